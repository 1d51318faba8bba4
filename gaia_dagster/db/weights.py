"""The validator DB's part in weight setting: the runs' scores the weight path reads, and the
record of every slot's weights (``weather_weight_submissions``). All SQL of it lives here."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import and_, select

from gaia_dagster.core.answers import stored_text
from gaia_dagster.db.models import ForecastRun, MinerResponse, MinerScore, WeightSubmission
from gaia_dagster.db.repository import ValidatorRepository, now_utc, utc


@dataclass(frozen=True)
class ResponseScores:
    """One miner's job of a run: its status and its whole day-1 and ERA5 scores (None if unscored)."""

    hotkey: str
    status: str
    day1: float | None
    era5: float | None


@dataclass(frozen=True)
class RunScores:
    run_id: int
    gfs_init_time: datetime
    responses: list[ResponseScores]


@dataclass(frozen=True)
class WeightRecord:
    slot_key: str
    block: int
    profile: str
    mode: str
    status: str
    call: dict[str, Any]
    vector: list[float] | None
    error: str | None
    computed_at: datetime


def runs_scored_since(repo: ValidatorRepository, since: datetime) -> list[RunScores]:
    """Every run with T0 at or after ``since`` (oldest first) with each job's whole scores, in two
    queries."""
    with repo.session() as s:
        runs = list(s.scalars(select(ForecastRun).where(ForecastRun.gfs_init_time >= utc(since))
                              .order_by(ForecastRun.gfs_init_time)))
        if not runs:
            return []
        ids = [r.id for r in runs]
        responses = list(s.execute(select(MinerResponse.id, MinerResponse.run_id, MinerResponse.miner_hotkey,
                                          MinerResponse.status).where(MinerResponse.run_id.in_(ids))
                                   .order_by(MinerResponse.id)))
        totals = {(rid, kind): score for rid, kind, score in s.execute(
            select(MinerScore.response_id, MinerScore.score_type, MinerScore.score)
            .join(MinerResponse, MinerScore.response_id == MinerResponse.id)
            .where(and_(MinerResponse.run_id.in_(ids), MinerScore.variable == "*", MinerScore.lead_hours == 0,
                        MinerScore.level == 0, MinerScore.score_type.in_(("day1", "era5")))))}
    by_run: dict[int, list[ResponseScores]] = {r.id: [] for r in runs}
    for rid, run_id, hotkey, status in responses:
        by_run[run_id].append(ResponseScores(hotkey, status, totals.get((rid, "day1")), totals.get((rid, "era5"))))
    return [RunScores(r.id, utc(r.gfs_init_time), by_run[r.id]) for r in runs]


def record_weights(repo: ValidatorRepository, slot_key: str, block: int, profile: str, mode: str, status: str,
                   call: dict[str, Any], vector: list[float] | None, error: str | None = None) -> None:
    """Record a slot's weights and outcome; a slot recorded again (its run re-executed) is updated."""
    values = {"slot_key": slot_key, "block": int(block), "profile": profile, "mode": mode, "status": status,
              "call": json.dumps(call), "vector": json.dumps(vector) if vector is not None else None,
              "error": stored_text(error) if error else None, "computed_at": now_utc()}
    with repo.session() as s, s.begin():
        stmt = repo._insert(WeightSubmission).values(**values)
        s.execute(stmt.on_conflict_do_update(index_elements=["slot_key"],
                                             set_={k: v for k, v in values.items() if k != "slot_key"}))


def _record(row: WeightSubmission) -> WeightRecord:
    return WeightRecord(row.slot_key, row.block, row.profile, row.mode, row.status, json.loads(row.call),
                        json.loads(row.vector) if row.vector else None, row.error, utc(row.computed_at))


def weight_records(repo: ValidatorRepository, limit: int = 50) -> list[WeightRecord]:
    """The latest slots' records, newest first."""
    with repo.session() as s:
        rows = s.scalars(select(WeightSubmission).order_by(WeightSubmission.id.desc()).limit(limit))
        return [_record(r) for r in rows]


def last_weights_block(repo: ValidatorRepository, statuses: tuple[str, ...]) -> int | None:
    """The block of the newest record with one of ``statuses`` (None when there is none)."""
    with repo.session() as s:
        return s.scalar(select(WeightSubmission.block).where(WeightSubmission.status.in_(statuses))
                        .order_by(WeightSubmission.id.desc()).limit(1))

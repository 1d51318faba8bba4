"""What the day view reads of the validator DB (``core/day_view.py``), in a few queries per run."""

from __future__ import annotations

from sqlalchemy import and_, select

from gaia_dagster.core.contract import ERA5_LEAD_HOURS
from gaia_dagster.core.day_view import DayJob
from gaia_dagster.core.states import ResponseStatus
from gaia_dagster.db.models import MinerResponse, MinerScore, StateTransition
from gaia_dagster.db.repository import ValidatorRepository


def failed_from(repo: ValidatorRepository, run_id: int) -> dict[int, tuple[str, bool]]:
    """Per failed job of the run, the status its accepted transition to ``failed`` left, and
    whether a Dagster run made it (a sensor's poll does not)."""
    failed = ResponseStatus.FAILED.value
    with repo.session() as s:
        rows = s.execute(select(StateTransition.entity_id, StateTransition.from_status, StateTransition.dagster_run_id)
                         .join(MinerResponse, MinerResponse.id == StateTransition.entity_id)
                         .where(and_(StateTransition.entity == "response", StateTransition.accepted.is_(True),
                                     StateTransition.to_status == failed, MinerResponse.run_id == run_id))
                         .order_by(StateTransition.id))
        return {entity_id: (from_status, run_id is not None) for entity_id, from_status, run_id in rows}


def runs_touched_since(repo: ValidatorRepository, since) -> set[int]:  # noqa: ANN001
    """Runs with a job updated at or after ``since``."""
    with repo.session() as s:
        return set(s.scalars(select(MinerResponse.run_id).where(MinerResponse.updated_at >= since).distinct()))


def whole_scores(repo: ValidatorRepository, run_id: int) -> dict[tuple[int, str], float]:
    """(job, score type) -> the whole score (variable '*', lead 0) of every job of the run."""
    with repo.session() as s:
        rows = s.execute(select(MinerScore.response_id, MinerScore.score_type, MinerScore.score)
                         .join(MinerResponse, MinerScore.response_id == MinerResponse.id)
                         .where(and_(MinerResponse.run_id == run_id, MinerScore.variable == "*",
                                     MinerScore.lead_hours == 0, MinerScore.level == 0)))
        return {(rid, kind): score for rid, kind, score in rows}


def day_jobs(repo: ValidatorRepository, run_id: int, weights_by_uid: list[float] | None = None) -> list[DayJob]:
    """Every job of the run as the day view shows it, in UID order (miners without one last)."""
    uid_of = {m.hotkey: m.uid for m in repo.miners()}
    scores, leads, causes = whole_scores(repo, run_id), repo.lead_scores(run_id, "era5"), failed_from(repo, run_id)
    jobs = []
    for r in repo.responses(run_id=run_id):
        uid = uid_of.get(r.miner_hotkey)
        weight = weights_by_uid[uid] if weights_by_uid and uid is not None and 0 <= uid < len(weights_by_uid) else None
        cause_from, in_run = causes.get(r.id, (None, False))
        jobs.append(DayJob(uid, r.miner_hotkey, r.status, r.error, cause_from, in_run, scores.get((r.id, "day1")),
                           scores.get((r.id, "era5")), len(leads.get(r.id, {})), len(ERA5_LEAD_HOURS), weight))
    return sorted(jobs, key=lambda j: (j.uid is None, j.uid if j.uid is not None else 0, j.hotkey))

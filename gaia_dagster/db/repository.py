"""The validator repository: every query of the validator DB, on SQLite and PostgreSQL.

Rules it implements:
- a run is created once per T0 and a response once per (run, miner): ``INSERT ... ON CONFLICT DO
  NOTHING`` behind the unique constraints, so a race can never create two;
- every status change is one compare-and-set ``UPDATE ... WHERE id = :id AND status = :expected``,
  checked against the state machine first, and audited whether accepted or refused.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterable, Sequence

from sqlalchemy import Engine, and_, create_engine, event, func, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session, sessionmaker

from gaia_dagster.core.answers import stored_text
from gaia_dagster.core.job_ids import DeterministicJobID
from gaia_dagster.core.manifest import PinnedManifest, data_digest
from gaia_dagster.core.liveness import DEFAULT_GRACE_RUNS, Liveness, record_delivery, record_miss
from gaia_dagster.core.selection import Selection
from gaia_dagster.core.states import (
    IN_FLIGHT_RESPONSE_STATUSES, RESPONSE_TRANSITIONS, RUN_TRANSITIONS, InvalidTransition, ResponseStatus, RunStatus,
    check_transition,
)
from gaia_dagster.db.models import (
    DuplicateEvent, ForecastRun, FrozenManifest, Miner, MinerResponse, MinerScore, RunSelection, StateTransition,
)


class LostTransition(RuntimeError):
    """A compare-and-set that matched no row: someone else moved it first, or it does not exist."""


def utc(moment: datetime | None) -> datetime | None:
    """Values read back from SQLite are naive: they are UTC."""
    if moment is None:
        return None
    return moment.replace(tzinfo=timezone.utc) if moment.tzinfo is None else moment.astimezone(timezone.utc)


def now_utc() -> datetime:
    return datetime.now(timezone.utc)


def _bounded_texts(fields: dict[str, Any]) -> dict[str, Any]:
    """A job's ``error`` often quotes what a miner said: stored bounded and storable (``stored_text``)."""
    if fields.get("error") is None:
        return fields
    return {**fields, "error": stored_text(fields["error"])}


def make_engine(url: str) -> Engine:
    """An engine for the validator DB; SQLite gets WAL and a busy timeout for concurrent runs."""
    if url.startswith("sqlite"):
        path = url.split("///", 1)[-1]
        if path and path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, connect_args={"timeout": 60})

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_conn, _record):  # noqa: ANN001
            cursor = dbapi_conn.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA busy_timeout=60000")
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.close()

        return engine
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg2://" + url[len("postgresql://"):]
    return create_engine(url, pool_pre_ping=True)


@dataclass(frozen=True)
class RunRecord:
    id: int
    gfs_init_time: datetime
    run_key: str
    status: str
    error: str | None
    created_at: datetime | None = None


@dataclass(frozen=True)
class ResponseRecord:
    id: int
    run_id: int
    gfs_init_time: datetime
    miner_hotkey: str
    validator_hotkey: str
    job_id: str
    status: str
    miner_base_url: str
    zarr_store_url: str | None
    verification_hash_claimed: str | None
    verification_hash_computed: str | None
    query_attempts: int
    poll_attempts: int
    day1_attempts: int
    era5_attempts: int
    next_attempt_at: datetime | None
    error: str | None
    updated_at: datetime | None = None
    slow_store_at: datetime | None = None   # its store read below the fast lane's floor: slow lane since


@dataclass(frozen=True)
class MinerRecord:
    hotkey: str
    base_url: str
    uid: int | None
    active: bool
    consecutive_misses: int
    listed: bool = True   # named by the latest registry read (file or metagraph)


def _miner_record(m: Miner) -> MinerRecord:
    return MinerRecord(m.hotkey, m.base_url, m.uid, m.active, m.consecutive_misses, m.listed)


class ValidatorRepository:
    """All reads and writes of the validator DB."""

    def __init__(self, url: str, grace_runs: int = DEFAULT_GRACE_RUNS):
        self.url = url
        self.grace_runs = grace_runs
        self.engine = make_engine(url)
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)

    # -- schema -----------------------------------------------------------------------------
    def create_schema(self) -> str | None:
        """Bring the schema to the latest migration (idempotent); returns the revision."""
        from gaia_dagster.db.migrate import upgrade

        return upgrade(self.engine)

    def session(self) -> Session:
        return self._sessions()

    def _insert(self, model):  # noqa: ANN001
        """A dialect-aware INSERT that supports ON CONFLICT."""
        dialect = self.engine.dialect.name
        if dialect == "postgresql":
            return postgresql.insert(model)
        if dialect == "sqlite":
            return sqlite.insert(model)
        raise RuntimeError(f"unsupported database dialect {dialect!r}")

    # -- runs ---------------------------------------------------------------------------------
    def get_or_create_run(self, gfs_init_time: datetime) -> tuple[RunRecord, bool]:
        """The run of this T0, created if missing (rule: one run per T0, reused on every rerun)."""
        t0 = utc(gfs_init_time)
        now = now_utc()
        run_key = DeterministicJobID.generate_task_id("weather", t0)
        stmt = self._insert(ForecastRun).values(
            gfs_init_time=t0, run_key=run_key, status=RunStatus.CREATED.value, created_at=now, updated_at=now
        ).on_conflict_do_nothing()
        with self.session() as s, s.begin():
            created = s.execute(stmt).rowcount == 1
        run = self.run_for_init_time(t0)
        assert run is not None
        return run, created

    def run_for_init_time(self, gfs_init_time: datetime) -> RunRecord | None:
        with self.session() as s:
            row = s.scalars(select(ForecastRun).where(ForecastRun.gfs_init_time == utc(gfs_init_time))).first()
            return _run_record(row) if row else None

    def run_by_id(self, run_id: int) -> RunRecord:
        with self.session() as s:
            return _run_record(s.get(ForecastRun, run_id))

    def all_runs(self) -> list[RunRecord]:
        with self.session() as s:
            return [_run_record(r) for r in s.scalars(select(ForecastRun).order_by(ForecastRun.gfs_init_time))]

    def advance_run(self, run_id: int, target: str, dagster_run_id: str | None = None,
                    error: str | None = None) -> bool:
        """Move a run forward to ``target`` if it is not already there or beyond (idempotent, and safe
        when several workers advance one run at once: a lost compare-and-set is read again)."""
        while True:
            run = self.run_by_id(run_id)
            if run.status == target or target not in RUN_TRANSITIONS[run.status]:
                return False
            try:
                self._compare_and_set(ForecastRun, "run", RUN_TRANSITIONS, run_id, run.status, target,
                                      dagster_run_id, {"error": error} if error else {})
                return True
            except LostTransition:
                continue  # another worker moved it meanwhile: decide again from where it is now

    # -- miners -------------------------------------------------------------------------------
    def upsert_miner(self, hotkey: str, base_url: str, uid: int | None = None) -> bool:
        """Register a miner or update its endpoint; True when it is new. Never deletes a miner."""
        now = now_utc()
        stmt = self._insert(Miner).values(hotkey=hotkey, base_url=base_url, uid=uid, active=True,
                                          consecutive_misses=0, registered_at=now)
        stmt = stmt.on_conflict_do_update(index_elements=["hotkey"],
                                          set_={"base_url": base_url, "uid": uid, "listed": True})
        with self.session() as s, s.begin():
            existed = s.get(Miner, hotkey) is not None
            s.execute(stmt)
        return not existed

    def miners(self, active_only: bool = False) -> list[MinerRecord]:
        with self.session() as s:
            q = select(Miner).order_by(Miner.hotkey)
            if active_only:
                q = q.where(Miner.active.is_(True))
            return [_miner_record(m) for m in s.scalars(q)]

    def miner(self, hotkey: str) -> MinerRecord | None:
        with self.session() as s:
            m = s.get(Miner, hotkey)
            return _miner_record(m) if m else None

    def set_listed(self, hotkeys: set[str]) -> list[str]:
        """Rule: a miner is listed while the latest registry read names it. Marks exactly
        ``hotkeys`` listed (one transaction) and returns those that just left the registry; they
        keep their rows and history, and are no longer selected."""
        with self.session() as s, s.begin():
            leaving = list(s.scalars(select(Miner.hotkey).where(and_(
                Miner.listed.is_(True), Miner.hotkey.not_in(hotkeys)))))
            s.execute(update(Miner).where(Miner.hotkey.not_in(hotkeys)).values(listed=False))
            if hotkeys:
                s.execute(update(Miner).where(Miner.hotkey.in_(hotkeys)).values(listed=True))
            return sorted(leaving)

    # -- responses ----------------------------------------------------------------------------
    def create_response(self, run_id: int, miner_hotkey: str, validator_hotkey: str, job_id: str,
                        miner_base_url: str) -> tuple[ResponseRecord, bool]:
        """Insert the (run, miner) job unless one exists; returns (row, created)."""
        now = now_utc()
        stmt = self._insert(MinerResponse).values(
            run_id=run_id, miner_hotkey=miner_hotkey, validator_hotkey=validator_hotkey, job_id=job_id,
            status=ResponseStatus.CREATED.value, miner_base_url=miner_base_url, created_at=now, updated_at=now,
        ).on_conflict_do_nothing()
        with self.session() as s, s.begin():
            created = s.execute(stmt).rowcount == 1
        row = self.response_for(run_id, miner_hotkey)
        assert row is not None
        return row, created

    def response_for(self, run_id: int, miner_hotkey: str) -> ResponseRecord | None:
        with self.session() as s:
            row = s.execute(_response_query().where(
                and_(MinerResponse.run_id == run_id, MinerResponse.miner_hotkey == miner_hotkey))).first()
            return _response_record(*row) if row else None

    def response_by_id(self, response_id: int) -> ResponseRecord:
        with self.session() as s:
            return _response_record(*s.execute(_response_query().where(MinerResponse.id == response_id)).one())

    def responses(self, run_id: int | None = None, statuses: Iterable[str] | None = None) -> list[ResponseRecord]:
        q = _response_query().order_by(MinerResponse.id)
        if run_id is not None:
            q = q.where(MinerResponse.run_id == run_id)
        if statuses is not None:
            q = q.where(MinerResponse.status.in_(list(statuses)))
        with self.session() as s:
            return [_response_record(*row) for row in s.execute(q)]

    def response_by_job_id(self, job_id: str) -> ResponseRecord | None:
        with self.session() as s:
            row = s.execute(_response_query().where(MinerResponse.job_id == job_id)).first()
            return _response_record(*row) if row else None

    def responses_for_timestep(self, gfs_init_time: datetime, miner_hotkey: str,
                               validator_hotkey: str | None = None) -> list[ResponseRecord]:
        """Jobs of exactly this GFS T0 and miner (optionally of one validator): no time tolerance."""
        q = _response_query().where(and_(ForecastRun.gfs_init_time == utc(gfs_init_time),
                                         MinerResponse.miner_hotkey == miner_hotkey))
        if validator_hotkey is not None:
            q = q.where(MinerResponse.validator_hotkey == validator_hotkey)
        with self.session() as s:
            return [_response_record(*row) for row in s.execute(q.order_by(MinerResponse.id))]

    def replace_job_id(self, response_id: int, old_job_id: str, new_job_id: str) -> bool:
        """Compare-and-set a job's ID (reconciliation after a DB overwrite); False if it changed meanwhile."""
        with self.session() as s, s.begin():
            result = s.execute(update(MinerResponse).where(and_(
                MinerResponse.id == response_id, MinerResponse.job_id == old_job_id,
            )).values(job_id=new_job_id, updated_at=now_utc()))
            return result.rowcount == 1

    def responses_created_since(self, since: datetime) -> list[ResponseRecord]:
        with self.session() as s:
            return [_response_record(*row) for row in
                    s.execute(_response_query().where(MinerResponse.created_at >= since).order_by(MinerResponse.id))]

    def duplicate_events_since(self, stage: str, since: datetime) -> int:
        with self.session() as s:
            return s.scalar(select(func.count()).select_from(DuplicateEvent).where(and_(
                DuplicateEvent.stage == stage, DuplicateEvent.at >= since))) or 0

    def in_flight_responses(self) -> list[ResponseRecord]:
        return self.responses(statuses=IN_FLIGHT_RESPONSE_STATUSES)

    def transition_response(self, response_id: int, expected: str, new: str,
                            dagster_run_id: str | None = None, **fields: Any) -> None:
        """Compare-and-set a response's status (and other columns in the same statement).

        A job that fails is a missed run for its miner; a job that reaches day-1 is a delivery."""
        self._compare_and_set(MinerResponse, "response", RESPONSE_TRANSITIONS, response_id, expected, new,
                              dagster_run_id, fields)
        if new in (ResponseStatus.FAILED.value, ResponseStatus.DAY1_SCORED.value):
            row = self.response_by_id(response_id)
            self.record_miner_outcome(row.miner_hotkey, row.run_id, delivered=new == ResponseStatus.DAY1_SCORED.value)

    def record_miner_outcome(self, hotkey: str, run_id: int, delivered: bool) -> Liveness | None:
        """Apply the grace-window rule to a miner after a run; compare-and-set, retried on a race."""
        for _ in range(5):
            with self.session() as s, s.begin():
                miner = s.get(Miner, hotkey)
                if miner is None:
                    return None
                before = Liveness(miner.active, miner.consecutive_misses, miner.first_missed_run_id,
                                  miner.last_missed_run_id)
                after = record_delivery(before) if delivered else record_miss(before, run_id, self.grace_runs)
                if after == before:
                    return after
                result = s.execute(update(Miner).where(and_(
                    Miner.hotkey == hotkey, Miner.consecutive_misses == before.consecutive_misses,
                    Miner.last_missed_run_id.is_(None) if before.last_missed_run_id is None
                    else Miner.last_missed_run_id == before.last_missed_run_id,
                )).values(active=after.active, consecutive_misses=after.consecutive_misses,
                          first_missed_run_id=after.first_missed_run_id, last_missed_run_id=after.last_missed_run_id,
                          **({"last_seen_at": now_utc()} if delivered else {})))
                if result.rowcount == 1:
                    return after
        raise LostTransition(f"miner {hotkey}: liveness kept changing under concurrent updates")

    def reset_liveness(self, hotkey: str) -> None:
        """The epoch reset: a miner that served its inactive run starts the next one clean."""
        with self.session() as s, s.begin():
            s.execute(update(Miner).where(Miner.hotkey == hotkey).values(
                active=True, consecutive_misses=0, first_missed_run_id=None, last_missed_run_id=None))

    def liveness(self, hotkey: str) -> Liveness | None:
        with self.session() as s:
            m = s.get(Miner, hotkey)
            return Liveness(m.active, m.consecutive_misses, m.first_missed_run_id, m.last_missed_run_id) if m else None

    # -- selection ----------------------------------------------------------------------------
    def record_selection(self, run_id: int, selection: Selection) -> None:
        """Store a run's selection once (the first computation wins; replicas compute the same)."""
        now = now_utc()
        rows = [{"run_id": run_id, "miner_hotkey": h, "position": i, "selected": True, "reason": None, "at": now}
                for i, h in enumerate(selection.selected)]
        rows += [{"run_id": run_id, "miner_hotkey": h, "position": len(selection.selected) + i, "selected": False,
                  "reason": why, "at": now} for i, (h, why) in enumerate(selection.skipped)]
        if rows:
            with self.session() as s, s.begin():
                s.execute(self._insert(RunSelection).values(rows).on_conflict_do_nothing())

    def selection(self, run_id: int) -> list[RunSelection]:
        with self.session() as s:
            return list(s.scalars(select(RunSelection).where(RunSelection.run_id == run_id)
                                  .order_by(RunSelection.position)))

    # -- frozen manifests (issue 10) ----------------------------------------------------------
    def freeze_manifest(self, response_id: int, run_id: int, miner_hotkey: str, manifest_hash: str,
                        files: dict[str, str]) -> FrozenManifest:
        """Freeze rule: a response's manifest is recorded once, at verification; a second freeze of the
        same response (a retried verification) keeps the first. Returns the stored row."""
        stmt = self._insert(FrozenManifest).values(
            response_id=response_id, run_id=run_id, miner_hotkey=miner_hotkey, manifest_hash=manifest_hash,
            files=json.dumps(files, sort_keys=True, separators=(",", ":")), data_digest=data_digest(files),
            frozen_at=now_utc(),
        ).on_conflict_do_nothing()
        with self.session() as s, s.begin():
            s.execute(stmt)
        with self.session() as s:
            return s.scalars(select(FrozenManifest).where(FrozenManifest.response_id == response_id)).one()

    def pinned_manifest(self, response_id: int) -> PinnedManifest | None:
        """The manifest frozen at verification of this response, or None (never frozen)."""
        with self.session() as s:
            row = s.scalars(select(FrozenManifest).where(FrozenManifest.response_id == response_id)).first()
        return PinnedManifest(row.manifest_hash, json.loads(row.files)) if row else None

    def update_response(self, response_id: int, expected: str, **fields: Any) -> None:
        """Update non-status columns (attempt counters, next attempt) guarded by the current status."""
        fields = _bounded_texts(fields)
        fields["updated_at"] = now_utc()
        with self.session() as s, s.begin():
            result = s.execute(update(MinerResponse).where(
                and_(MinerResponse.id == response_id, MinerResponse.status == expected)).values(**fields))
            if result.rowcount != 1:
                raise LostTransition(f"response {response_id}: not in status {expected!r} any more")

    def claim_attempt(self, response_id: int, stage: str, status: str, attempts: int, **fields: Any) -> bool:
        """Atomically take attempt ``attempts + 1`` of a stage: exactly one of racing workers wins."""
        column = getattr(MinerResponse, f"{stage}_attempts")
        with self.session() as s, s.begin():
            result = s.execute(update(MinerResponse).where(and_(
                MinerResponse.id == response_id, MinerResponse.status == status, column == attempts,
            )).values({column.key: attempts + 1, "updated_at": now_utc(), **fields}))
            return result.rowcount == 1

    def _compare_and_set(self, model, entity: str, table: dict, row_id: int, expected: str, new: str,  # noqa: ANN001
                         dagster_run_id: str | None, fields: dict[str, Any]) -> None:
        """One ``UPDATE ... WHERE id = :id AND status = :expected``; refusals are audited too."""
        now = now_utc()
        fields = _bounded_texts(fields)
        try:
            check_transition(table, expected, new, f"{entity} {row_id}")
        except InvalidTransition as exc:
            self._audit(entity, row_id, expected, new, False, str(exc), dagster_run_id)
            raise
        with self.session() as s, s.begin():
            result = s.execute(update(model).where(and_(model.id == row_id, model.status == expected))
                               .values(status=new, updated_at=now, **fields))
            if result.rowcount == 1:
                s.add(StateTransition(entity=entity, entity_id=row_id, from_status=expected, to_status=new,
                                      accepted=True, reason=fields.get("error"), dagster_run_id=dagster_run_id,
                                      at=now))
                return
        actual = self._status_of(model, row_id)
        reason = f"{entity} {row_id}: expected status {expected!r} but found {actual!r}; {expected} -> {new} lost"
        self._audit(entity, row_id, expected, new, False, reason, dagster_run_id)
        raise LostTransition(reason)

    def _status_of(self, model, row_id: int) -> str | None:  # noqa: ANN001
        with self.session() as s:
            return s.scalar(select(model.status).where(model.id == row_id))

    def _audit(self, entity: str, entity_id: int, from_status: str, to_status: str, accepted: bool,
               reason: str | None, dagster_run_id: str | None) -> None:
        with self.session() as s, s.begin():
            s.add(StateTransition(entity=entity, entity_id=entity_id, from_status=from_status,
                                  to_status=to_status, accepted=accepted, reason=reason,
                                  dagster_run_id=dagster_run_id, at=now_utc()))

    def transitions(self, entity: str | None = None, entity_id: int | None = None) -> list[StateTransition]:
        q = select(StateTransition).order_by(StateTransition.id)
        if entity:
            q = q.where(StateTransition.entity == entity)
        if entity_id is not None:
            q = q.where(StateTransition.entity_id == entity_id)
        with self.session() as s:
            return list(s.scalars(q))

    # -- scores -------------------------------------------------------------------------------
    def record_scores(self, response_id: int, score_type: str, rows: Sequence[dict[str, Any]],
                      profile: str | None = None) -> int:
        """Store score rows under their unique key; a rerun replaces values, never adds rows.
        ``profile`` names the scoring profile every row was computed under.

        Rows go in batches small enough for any SQLite's bound-parameter limit, in one transaction."""
        if not rows:
            return 0
        now = now_utc()
        values = [{**_score_values(response_id, score_type, now, row), "profile": profile} for row in rows]
        with self.session() as s, s.begin():
            self.upsert_many(s, MinerScore, values, ("response_id", "score_type", "lead_hours", "variable", "level"),
                             (*_SCORE_METRICS, "profile", "created_at"))
        return len(values)

    def upsert_many(self, session: Session, model, values: Sequence[dict[str, Any]], key: Sequence[str],  # noqa: ANN001
                    columns: Sequence[str]) -> None:
        """``INSERT ... ON CONFLICT (key) DO UPDATE columns`` of every row in ``values``: one statement
        compiled once and executed for all rows (the driver batches them), so a scorecard of tens of
        thousands of rows costs no SQL compilation per row."""
        stmt = self._insert(model.__table__)
        stmt = stmt.on_conflict_do_update(index_elements=list(key),
                                          set_={c: getattr(stmt.excluded, c) for c in columns})
        session.connection().execute(stmt, list(values))

    def scores(self, response_id: int, score_type: str | None = None) -> list[MinerScore]:
        q = select(MinerScore).where(MinerScore.response_id == response_id).order_by(MinerScore.id)
        if score_type:
            q = q.where(MinerScore.score_type == score_type)
        with self.session() as s:
            return list(s.scalars(q))

    def score_profile(self, response_id: int, score_type: str) -> str | None:
        """The scoring profile of a response's whole-score row of one type (None when unscored)."""
        with self.session() as s:
            return s.scalar(select(MinerScore.profile).where(and_(
                MinerScore.response_id == response_id, MinerScore.score_type == score_type,
                MinerScore.variable == "*", MinerScore.lead_hours == 0, MinerScore.level == 0)))

    def total_score(self, response_id: int, score_type: str) -> float | None:
        """The whole-score row (variable '*', lead 0) of one type for one response."""
        with self.session() as s:
            return s.scalar(select(MinerScore.score).where(and_(
                MinerScore.response_id == response_id, MinerScore.score_type == score_type,
                MinerScore.variable == "*", MinerScore.lead_hours == 0, MinerScore.level == 0)))

    def total_scores(self, run_id: int, score_type: str) -> dict[int, float | None]:
        """``total_score`` of every response of a run that has one, by response id, in one query."""
        with self.session() as s:
            rows = s.execute(select(MinerScore.response_id, MinerScore.score)
                             .join(MinerResponse, MinerScore.response_id == MinerResponse.id)
                             .where(and_(MinerResponse.run_id == run_id, MinerScore.score_type == score_type,
                                         MinerScore.variable == "*", MinerScore.lead_hours == 0,
                                         MinerScore.level == 0)))
            return {response_id: score for response_id, score in rows}

    def lead_scores(self, run_id: int, score_type: str) -> dict[int, dict[int, float]]:
        """Per response of a run, its per-lead totals of one type (variable '*', lead > 0): the
        leads a progressive stage has scored so far, in one query for the whole run."""
        with self.session() as s:
            rows = s.execute(select(MinerScore.response_id, MinerScore.lead_hours, MinerScore.score)
                             .join(MinerResponse, MinerScore.response_id == MinerResponse.id)
                             .where(and_(MinerResponse.run_id == run_id, MinerScore.score_type == score_type,
                                         MinerScore.variable == "*", MinerScore.lead_hours > 0)))
            out: dict[int, dict[int, float]] = {}
            for response_id, lead, score in rows:
                out.setdefault(response_id, {})[int(lead)] = float(score or 0.0)
            return out

    def overall_scores_before(self, gfs_init_time: datetime, days: int) -> list[dict[str, float]]:
        """The overall score per miner of each of the ``days`` runs before T0, oldest first."""
        with self.session() as s:
            runs = list(s.scalars(select(ForecastRun).where(ForecastRun.gfs_init_time < utc(gfs_init_time))
                                  .order_by(ForecastRun.gfs_init_time.desc()).limit(days)))
            out = []
            for run in reversed(runs):
                rows = s.execute(select(MinerResponse.miner_hotkey, MinerScore.score)
                                 .join(MinerScore, MinerScore.response_id == MinerResponse.id)
                                 .where(and_(MinerResponse.run_id == run.id, MinerScore.score_type == "overall",
                                             MinerScore.variable == "*", MinerScore.lead_hours == 0)))
                out.append({hotkey: float(score or 0.0) for hotkey, score in rows})
            return out

    # -- dedup --------------------------------------------------------------------------------
    def record_duplicate(self, stage: str, key: str, outcome: str = "detected", detail: str | None = None) -> None:
        """Count a duplicate attempt: ``detected`` when stopped, ``allowed`` when it got through."""
        with self.session() as s, s.begin():
            s.add(DuplicateEvent(stage=stage, outcome=outcome, key=key, detail=detail, at=now_utc()))

    def duplicate_counts(self) -> dict[tuple[str, str], int]:
        """Counts of duplicate events by (stage, outcome)."""
        with self.session() as s:
            rows = s.execute(select(DuplicateEvent.stage, DuplicateEvent.outcome, func.count())
                             .group_by(DuplicateEvent.stage, DuplicateEvent.outcome))
            return {(stage, outcome): n for stage, outcome, n in rows}

    def duplicate_jobs(self) -> list[tuple[int, str, int]]:
        """Verification query: (run, miner) pairs holding more than one job (must be empty)."""
        with self.session() as s:
            return list(s.execute(
                select(MinerResponse.run_id, MinerResponse.miner_hotkey, func.count())
                .group_by(MinerResponse.run_id, MinerResponse.miner_hotkey).having(func.count() > 1)))

    def duplicate_scores(self) -> list[tuple]:
        """Verification query: score components stored more than once (must be empty)."""
        with self.session() as s:
            return list(s.execute(
                select(MinerScore.response_id, MinerScore.score_type, MinerScore.lead_hours,
                       MinerScore.variable, MinerScore.level, func.count())
                .group_by(MinerScore.response_id, MinerScore.score_type, MinerScore.lead_hours,
                          MinerScore.variable, MinerScore.level).having(func.count() > 1)))

    def job_id_mismatches(self) -> list[tuple[int, str, str, str]]:
        """Stored job IDs that differ from the deterministic ID of (T0, miner): (row, miner, stored, expected)."""
        out = []
        for r in self.responses():
            expected = DeterministicJobID.generate_weather_job_id(r.gfs_init_time, r.miner_hotkey)
            if r.job_id != expected:
                out.append((r.id, r.miner_hotkey, r.job_id, expected))
        return out


_SCORE_METRICS = ("score", "rmse", "bias", "acc", "skill", "clone_distance", "clone_penalty")


def _score_values(response_id: int, score_type: str, now: datetime, row: dict[str, Any]) -> dict[str, Any]:
    """One complete score row: level 0 for surface, non-finite metrics stored as NULL."""
    values = {"response_id": response_id, "score_type": score_type, "created_at": now,
              "lead_hours": int(row["lead_hours"]), "variable": row["variable"], "level": int(row.get("level") or 0)}
    for metric in _SCORE_METRICS:
        value = row.get(metric)
        values[metric] = None if value is None else _finite_or_none(float(value))
    return values


def _finite_or_none(value: float) -> float | None:
    return value if value == value and abs(value) != float("inf") else None


def _run_record(row: ForecastRun) -> RunRecord:
    return RunRecord(row.id, utc(row.gfs_init_time), row.run_key, row.status, row.error, utc(row.created_at))


def _response_query():
    return select(MinerResponse, ForecastRun.gfs_init_time).join(ForecastRun, ForecastRun.id == MinerResponse.run_id)


def _response_record(row: MinerResponse, gfs_init_time: datetime) -> ResponseRecord:
    return ResponseRecord(
        id=row.id, run_id=row.run_id, gfs_init_time=utc(gfs_init_time), miner_hotkey=row.miner_hotkey,
        validator_hotkey=row.validator_hotkey, job_id=row.job_id, status=row.status,
        miner_base_url=row.miner_base_url, zarr_store_url=row.zarr_store_url,
        verification_hash_claimed=row.verification_hash_claimed,
        verification_hash_computed=row.verification_hash_computed, query_attempts=row.query_attempts,
        poll_attempts=row.poll_attempts, day1_attempts=row.day1_attempts, era5_attempts=row.era5_attempts,
        next_attempt_at=utc(row.next_attempt_at), error=row.error, updated_at=utc(row.updated_at),
        slow_store_at=utc(row.slow_store_at),
    )


def default_db_url(home: str | os.PathLike[str]) -> str:
    """``GAIA_DB_URL`` if set, else SQLite under the instance directory."""
    return os.environ.get("GAIA_DB_URL") or f"sqlite:///{Path(home).resolve() / 'gaia' / 'validator.db'}"

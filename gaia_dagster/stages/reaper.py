"""Stale work (requirement: fair-job-distribution, "stuck work is reset after a lease").

A worker killed mid-stage leaves its job where it was: a claimed initiate-fetch with no answer, or
a job in ``forecast_ready`` / ``day1_scoring`` / ``era5_scoring`` with an attempt claimed and no
next attempt. When no Dagster run holds the partition and either the run that held it has ended
(run monitoring fails a run whose worker died) or the lease (10 minutes) has passed, the reaper
makes the next attempt due, so the stage's own retry (``stages.attempts``, launched by the
sensors) takes it: the reaper is not a second retry mechanism. A job created but never claimed
(the connection dropped between the two, or the worker died there) gets its first query due. A lost
query after the last
attempt fails the job (the plan's query budget); a scoring stage with no attempt left keeps its
status, with the reason, for a rerun or backfill of the partition. Nothing is duplicated.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Callable

from gaia_dagster.core.retry import StageRetry
from gaia_dagster.core.states import ResponseStatus
from gaia_dagster.db.repository import LostTransition, ResponseRecord, ValidatorRepository, now_utc
from gaia_dagster.stages.attempts import DAY1, ERA5, NO_ATTEMPT_LEFT, attempts_of
from gaia_dagster.stages.lifecycle import fail_job

LEASE = timedelta(minutes=10)
CREATED, FAILED = ResponseStatus.CREATED.value, ResponseStatus.FAILED.value
RESUMABLE = {DAY1.ready: DAY1.name, DAY1.working: DAY1.name, ERA5.working: ERA5.name}


@dataclass(frozen=True)
class Reaped:
    response: ResponseRecord
    action: str  # query_orphan | query_retry | retry_due | stalled | FAILED
    stage: str
    detail: str


def is_stale(row: ResponseRecord, now: datetime, lease: timedelta) -> bool:
    """Untouched for longer than the lease."""
    return row.updated_at is not None and row.updated_at < now - lease


def reap_stale_work(repo: ValidatorRepository, retries: dict[str, StageRetry], now: datetime | None = None,
                    lease: timedelta = LEASE, dagster_run_id: str | None = None,
                    busy: Callable[[ResponseRecord], bool] = lambda _row: False,
                    orphaned: Callable[[ResponseRecord], bool] = lambda _row: False) -> list[Reaped]:
    """Make stale work's next attempt due (or fail a lost last query). ``busy`` tells whether a run
    still holds the job's partition (such a job is not stale, only slow); ``orphaned`` whether the
    run that held it has ended without moving it on (its worker died: no lease to wait out)."""
    now = now or now_utc()
    reaped = []
    for row in repo.responses(statuses=[CREATED, *RESUMABLE]):
        if row.next_attempt_at is not None or busy(row):
            continue
        if not is_stale(row, now, lease) and not orphaned(row):
            continue
        try:
            outcome = _reap(repo, row, retries, now, dagster_run_id)
        except LostTransition:
            continue  # it moved meanwhile: not stale after all
        if outcome:
            reaped.append(outcome)
    return reaped


def _reap(repo: ValidatorRepository, row: ResponseRecord, retries: dict[str, StageRetry], now: datetime,
          dagster_run_id: str | None) -> Reaped | None:
    who = f"miner {row.miner_hotkey}, job {row.job_id}"
    if row.status == CREATED:
        if row.query_attempts == 0:
            return _carry_orphan(repo, row, now, who)
        if retries["query"].exhausted(row.query_attempts):
            error = f"{who}: initiate-fetch attempt {row.query_attempts} was lost (worker gone) and was the last"
            return Reaped(fail_job(repo, row.id, CREATED, error, dagster_run_id).job, FAILED, "query", error)
        repo.update_response(row.id, CREATED, next_attempt_at=now,
                             error=f"attempt {row.query_attempts} lost (worker gone); retrying")
        return Reaped(repo.response_by_id(row.id), "query_retry", "query", "lease expired")
    return _resume(repo, row, retries, now, who)


def _carry_orphan(repo: ValidatorRepository, row: ResponseRecord, now: datetime, who: str) -> Reaped:
    """Rule (orphans): a job created but never claimed gets its first initiate-fetch due now; no
    attempt was spent, so none is counted."""
    detail = f"{who}: created but never claimed (its request run ended first); its first request is due now"
    repo.update_response(row.id, CREATED, next_attempt_at=now, error=detail)
    return Reaped(repo.response_by_id(row.id), "query_orphan", "query", detail)


def _resume(repo: ValidatorRepository, row: ResponseRecord, retries: dict[str, StageRetry], now: datetime,
            who: str) -> Reaped | None:
    """A scoring stage's lost attempt: the next one due, or the job kept for a rerun after the last."""
    stage = RESUMABLE[row.status]
    attempts = attempts_of(row, stage)
    if retries[stage].exhausted(attempts):
        error = f"{who}: {stage} stage stuck in {row.status} after {attempts} attempts; {NO_ATTEMPT_LEFT}"
        if NO_ATTEMPT_LEFT not in (row.error or ""):  # a recorded last fault already says why
            repo.update_response(row.id, row.status, error=error)
            return Reaped(repo.response_by_id(row.id), "stalled", stage, error)
        return None
    repo.update_response(row.id, row.status, next_attempt_at=now,
                         error=f"{stage} attempt {attempts} lost (worker gone, {row.status} past its lease); retrying")
    return Reaped(repo.response_by_id(row.id), "retry_due", stage, f"{row.status} past its lease")

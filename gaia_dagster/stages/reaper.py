"""Stale work (requirement: fair-job-distribution, "stuck work is reset after a lease").

A worker killed mid-stage leaves its job where it was: a claimed initiate-fetch with no answer, or
a job in ``day1_scoring`` / ``era5_scoring`` / ``forecast_ready`` that nothing moves on. After the
lease (10 minutes) such work returns to a retryable state, or fails after its stage's last
attempt. Nothing is duplicated: the reaper only sets a next-attempt time or asks for the stage to
run again under a new attempt key, and every stage re-checks the status before it acts.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from gaia_dagster.core.retry import StageRetry
from gaia_dagster.db.repository import LostTransition, ResponseRecord, ValidatorRepository, now_utc

LEASE = timedelta(minutes=10)
RESUMABLE = {"forecast_ready": "day1", "day1_scoring": "day1", "era5_scoring": "era5"}


@dataclass(frozen=True)
class Reaped:
    response: ResponseRecord
    action: str  # query_retry | rerun | failed
    stage: str
    detail: str


def is_stale(row: ResponseRecord, now: datetime, lease: timedelta) -> bool:
    """Untouched for longer than the lease."""
    return row.updated_at is not None and row.updated_at < now - lease


def reap_stale_work(repo: ValidatorRepository, retries: dict[str, StageRetry], now: datetime | None = None,
                    lease: timedelta = LEASE, dagster_run_id: str | None = None) -> list[Reaped]:
    """Return stale work to a retryable state, or fail it after the last attempt."""
    now = now or now_utc()
    reaped = []
    for row in repo.responses(statuses=["created", *RESUMABLE]):
        if not is_stale(row, now, lease):
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
    if row.status == "created":
        if row.query_attempts == 0 or row.next_attempt_at is not None:
            return None  # never claimed, or already waiting for its next attempt
        if retries["query"].exhausted(row.query_attempts):
            error = f"{who}: initiate-fetch attempt {row.query_attempts} was lost (worker gone) and was the last"
            repo.transition_response(row.id, "created", "failed", dagster_run_id, error=error)
            return Reaped(repo.response_by_id(row.id), "failed", "query", error)
        repo.update_response(row.id, "created", next_attempt_at=now,
                             error=f"attempt {row.query_attempts} lost (worker gone); retrying")
        return Reaped(repo.response_by_id(row.id), "query_retry", "query", "lease expired")
    stage = RESUMABLE[row.status]
    attempts = row.day1_attempts if stage == "day1" else row.era5_attempts
    if retries[stage].exhausted(attempts + 1):
        error = f"{who}: {stage} stage stuck in {row.status} past its lease after {attempts + 1} attempts"
        repo.transition_response(row.id, row.status, "failed", dagster_run_id, error=error)
        return Reaped(repo.response_by_id(row.id), "failed", stage, error)
    if not repo.claim_attempt(row.id, stage, row.status, attempts):
        return None
    return Reaped(repo.response_by_id(row.id), "rerun", stage, f"{row.status} past its lease")

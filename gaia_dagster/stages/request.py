"""Stage ``query``: create the (run, miner) job and send initiate-fetch, exactly once.

Rules (dedup-defense-in-depth): check before executing (an existing job is skipped with the
outcome ``duplicate_skipped`` and the miner is not asked again); a unique constraint and ON
CONFLICT DO NOTHING behind the check; the attempt itself is claimed by compare-and-set so that of
two racing workers only one ever talks to the miner.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from gaia_dagster.core.attribution import validator_side_note, validator_suspected
from gaia_dagster.core.job_ids import weather_job_id
from gaia_dagster.core.retry import StageRetry
from gaia_dagster.core.urls import store_url_problem
from gaia_dagster.core.states import MinerJobStatus, ResponseStatus
from gaia_dagster.db.repository import MinerRecord, ResponseRecord, ValidatorRepository, now_utc
from gaia_dagster.resources.miner_client import MinerClient, MinerClientError
from gaia_dagster.stages.lifecycle import fail_job, start_inference

ACCEPTED = MinerJobStatus.FETCH_ACCEPTED.value
COMPLETED = MinerJobStatus.COMPLETED.value
CREATED, FAILED = ResponseStatus.CREATED.value, ResponseStatus.FAILED.value


@dataclass(frozen=True)
class RequestOutcome:
    outcome: str  # requested | fast_path | duplicate_skipped | retry_scheduled | retry_not_due | FAILED
    response: ResponseRecord
    detail: str = ""


def open_job(repo: ValidatorRepository, miner: MinerRecord, t0: datetime, validator_hotkey: str) -> tuple[ResponseRecord, bool]:
    """The run of T0 and the miner's job under its deterministic ID, each created once."""
    run, _ = repo.get_or_create_run(t0)
    return repo.create_response(run.id, miner.hotkey, validator_hotkey, weather_job_id(t0, miner.hotkey),
                                miner.base_url)


def claim_query(repo: ValidatorRepository, row: ResponseRecord, created: bool, retry: StageRetry,
                now: datetime) -> RequestOutcome | None:
    """Decide whether this worker may query the miner; an outcome when it may not.

    A job past ``created`` already has its answer; a job whose last attempt has no next-attempt
    time is being queried right now by another worker; otherwise the attempt is claimed by
    compare-and-set on the attempt counter, so exactly one of racing workers asks the miner.
    """
    key = f"{row.gfs_init_time:%Y%m%d%H}|{row.miner_hotkey}"
    if row.status != CREATED or (row.query_attempts > 0 and row.next_attempt_at is None):
        detail = f"job {row.job_id} already {row.status}" + (" (attempt in flight)" if row.status == CREATED else "")
        repo.record_duplicate("forecast_request", key, detail=detail)
        return RequestOutcome("duplicate_skipped", row, detail)
    if row.next_attempt_at is not None and row.next_attempt_at > now:
        return RequestOutcome("retry_not_due", row, f"next attempt at {row.next_attempt_at.isoformat()}")
    if not repo.claim_attempt(row.id, "query", CREATED, row.query_attempts, next_attempt_at=None):
        repo.record_duplicate("forecast_request", key, detail="lost the claim to a concurrent worker")
        return RequestOutcome("duplicate_skipped", repo.response_by_id(row.id), "another worker holds this attempt")
    return None


def request_forecast(repo: ValidatorRepository, client: MinerClient, miner: MinerRecord, t0: datetime,
                     validator_hotkey: str, retry: StageRetry, dagster_run_id: str | None = None,
                     now: datetime | None = None) -> RequestOutcome:
    """Open the job for (T0, miner) and ask the miner to start inference, once."""
    now = now or now_utc()
    row, created = open_job(repo, miner, t0, validator_hotkey)
    blocked = claim_query(repo, row, created, retry, now)
    if blocked is not None:
        return blocked
    attempt = row.query_attempts + 1
    try:
        answer = client.initiate_fetch(miner.base_url, miner.hotkey, validator_hotkey, t0)
    except MinerClientError as exc:
        return _query_failed(repo, row, retry, attempt, str(exc), now, dagster_run_id)
    return _accept(repo, row, answer, dagster_run_id)


def _query_failed(repo: ValidatorRepository, row: ResponseRecord, retry: StageRetry, attempt: int,
                  reason: str, now: datetime, dagster_run_id: str | None) -> RequestOutcome:
    """A failed attempt: schedule the next one, or fail the job after the last (rule: per-stage retry);
    never while the fault looks like the validator's own (``core.attribution``): then the job is kept
    and asked again after the last backoff."""
    tried, through = run_reach(repo, row) if retry.exhausted(attempt) else (0, 0)
    if retry.exhausted(attempt) and validator_suspected(tried, through):
        note = validator_side_note(f"initiate-fetch attempt {attempt} ({reason})", tried)
        next_at = retry.next_attempt_at(now, attempt)
        repo.update_response(row.id, CREATED, next_attempt_at=next_at, error=f"{note}; asked again at {next_at:%H:%M:%SZ}")
        return RequestOutcome("retry_scheduled", repo.response_by_id(row.id), note)
    if retry.exhausted(attempt):
        error = f"initiate-fetch failed {attempt} times; last: {reason}"
        return RequestOutcome(FAILED, fail_job(repo, row.id, CREATED, error, dagster_run_id).job, error)
    repo.update_response(row.id, CREATED, next_attempt_at=retry.next_attempt_at(now, attempt),
                         error=f"attempt {attempt}: {reason}")
    return RequestOutcome("retry_scheduled", repo.response_by_id(row.id), reason)


def run_reach(repo: ValidatorRepository, row: ResponseRecord) -> tuple[int, int]:
    """(miners asked, miners that accepted) in this job's run: asked = a query attempt claimed;
    accepted = the job moved past ``created`` (it is polled from then on, even if it failed later)."""
    rows = repo.responses(run_id=row.run_id)
    return (sum(1 for r in rows if r.query_attempts > 0),
            sum(1 for r in rows if r.status not in (CREATED, FAILED) or r.poll_attempts > 0))


def _accept(repo: ValidatorRepository, row: ResponseRecord, answer, dagster_run_id: str | None) -> RequestOutcome:  # noqa: ANN001
    """Record the miner's answer: accepted or fast path moves the job on; anything else fails it."""
    who = f"miner {row.miner_hotkey}, run T0={row.gfs_init_time:%Y-%m-%dT%H}"
    if answer.status not in (ACCEPTED, COMPLETED):
        error = f"{who}: initiate-fetch answered {answer.status!r}: {answer.message}"
        return RequestOutcome(FAILED, fail_job(repo, row.id, CREATED, error, dagster_run_id).job, error)
    if answer.job_id != row.job_id:
        error = f"{who}: miner returned job id {answer.job_id!r}, expected the deterministic {row.job_id!r}"
        return RequestOutcome(FAILED, fail_job(repo, row.id, CREATED, error, dagster_run_id).job, error)
    problem = answer.zarr_store_url and store_url_problem(answer.zarr_store_url, row.miner_base_url)
    if problem:  # URL rule (core.urls): never stored, never shown
        error = f"{who}: initiate-fetch answer refused: {problem}"
        return RequestOutcome(FAILED, fail_job(repo, row.id, CREATED, error, dagster_run_id).job, error)
    moved = start_inference(repo, row.id, dagster_run_id, zarr_store_url=answer.zarr_store_url,
                            verification_hash_claimed=answer.verification_hash)
    outcome = "fast_path" if answer.status == COMPLETED else "requested"
    return RequestOutcome(outcome, moved.job, answer.message or "")

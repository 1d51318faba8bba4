"""Stage ``poll``: ask every in-flight job's miner how inference is going.

Poll statuses (GAIA_SPEC 2, ``core/states.py``): done = completed; keep polling = processing,
received, running, running_inference, processing_output; failed = failed, error, fetch_error.
Anything else (``not_found``, an unknown status) and no usable answer (HTTP 500, timeout, an answer
over the limits...) is a failed poll attempt: it uses a poll and its reason is recorded on the job;
after the last poll the job fails with the last reason. A completed job whose store could not be
read for verification (``UNVERIFIED`` on the job) is verified again at the next poll, after the
backoff, and fails when the poll budget is spent: a miner that says completed and never serves its
store cannot hold the day.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Callable

from gaia_dagster.core.retry import StageRetry
from gaia_dagster.core.states import (
    MINER_POLL_DONE, MINER_POLL_FAILED, MINER_POLL_NOT_FOUND, MINER_POLL_WORKING, ResponseStatus,
)
from gaia_dagster.db.repository import ResponseRecord, ValidatorRepository, now_utc
from gaia_dagster.resources.miner_client import MinerClient, MinerClientError
from gaia_dagster.stages.lifecycle import fail_job

RUNNING = ResponseStatus.INFERENCE_RUNNING.value
FAILED = ResponseStatus.FAILED.value          # the decision: the job failed
READY, WAITING, ATTEMPT_FAILED = "ready", "waiting", "attempt_failed"
UNVERIFIED = "its store could not be read for verification"


@dataclass(frozen=True)
class PollDecision:
    response: ResponseRecord
    action: str  # READY | WAITING | FAILED
    detail: str = ""


def due_for_poll(responses: list[ResponseRecord], now: datetime) -> list[ResponseRecord]:
    """In-flight jobs whose next poll time has come."""
    return [r for r in responses if r.status == RUNNING
            and (r.next_attempt_at is None or r.next_attempt_at <= now)]


def classify(status: str) -> str:
    """Map a miner's poll status onto ready / waiting / failed, or attempt_failed for ``not_found``
    and unknown statuses (rule: GAIA_SPEC 2 status sets)."""
    if status in MINER_POLL_DONE:
        return READY
    if status in MINER_POLL_WORKING:
        return WAITING
    if status in MINER_POLL_FAILED:
        return FAILED
    return ATTEMPT_FAILED


def attempt_reason(who: str, answer) -> str:  # noqa: ANN001 - a PollResult
    """Why an answered poll did not count: the miner lost the job, or said something unknown."""
    if answer.status == MINER_POLL_NOT_FOUND:
        return f"{who}: the miner has no such job (status 'not_found'): {answer.message}"
    return f"{who}: unknown poll status {answer.status!r}: {answer.message}"


def poll_in_flight(repo: ValidatorRepository, client: MinerClient, retry: StageRetry,
                   dagster_run_id: str | None = None, now: datetime | None = None,
                   concurrency: int = 32,
                   held: Callable[[ResponseRecord], bool] = lambda row: False) -> list[PollDecision]:
    """Poll every due job concurrently and record each attempt; returns one decision per job. A job
    ``held`` by a run (its verification queued or running) is not polled: waiting for a run slot
    never spends the miner's polls."""
    now = now or now_utc()
    due = [r for r in due_for_poll(repo.in_flight_responses(), now) if not held(r)]
    answers = client.poll_many([(r.miner_base_url, r.miner_hotkey, r.job_id) for r in due], concurrency)
    return [_decide(repo, r, a, retry, now, dagster_run_id) for r, a in zip(due, answers)]


def _ready(repo: ValidatorRepository, row: ResponseRecord, attempt: int, retry: StageRetry, now: datetime,
           detail: str, dagster_run_id: str | None) -> PollDecision:
    """The miner reports completed: verify now; after a verification that could not read the store,
    again after the backoff, and fail the job once the poll budget is spent (rule: bounded retries)."""
    unverified = UNVERIFIED in (row.error or "")
    if unverified and retry.exhausted(attempt):
        error = f"miner {row.miner_hotkey}, job {row.job_id}: completed, but {UNVERIFIED} in {attempt} polls; last: {row.error}"
        return PollDecision(fail_job(repo, row.id, RUNNING, error, dagster_run_id, poll_attempts=attempt).job,
                            FAILED, error)
    repo.update_response(row.id, RUNNING, poll_attempts=attempt,
                         next_attempt_at=retry.next_attempt_at(now, attempt) if unverified else None,
                         error=row.error if unverified else None)
    return PollDecision(repo.response_by_id(row.id), READY, detail)


def _decide(repo: ValidatorRepository, row: ResponseRecord, answer, retry: StageRetry,  # noqa: ANN001
            now: datetime, dagster_run_id: str | None) -> PollDecision:
    """Record one poll attempt and decide what follows."""
    attempt = row.poll_attempts + 1
    who = f"miner {row.miner_hotkey}, job {row.job_id}"
    if isinstance(answer, MinerClientError):
        kind, detail = ATTEMPT_FAILED, str(answer)
    else:
        kind, detail = classify(answer.status), f"{who}: status {answer.status!r}: {answer.message}"
        if kind == ATTEMPT_FAILED:
            detail = attempt_reason(who, answer)
    if kind == READY:
        return _ready(repo, row, attempt, retry, now, detail, dagster_run_id)
    if kind == FAILED:
        error = f"{who}: inference failed on the miner: {answer.message or answer.status}"
        return PollDecision(fail_job(repo, row.id, RUNNING, error, dagster_run_id).job, FAILED, error)
    if retry.exhausted(attempt):
        error = f"{who}: no forecast after {attempt} polls; last: {detail}"
        return PollDecision(fail_job(repo, row.id, RUNNING, error, dagster_run_id, poll_attempts=attempt).job,
                            FAILED, error)
    repo.update_response(row.id, RUNNING, poll_attempts=attempt, next_attempt_at=retry.next_attempt_at(now, attempt),
                         error=f"poll attempt {attempt} failed: {detail}" if kind == ATTEMPT_FAILED else None)
    return PollDecision(repo.response_by_id(row.id), WAITING, detail)

"""Stage ``poll``: ask every in-flight job's miner how inference is going.

Poll statuses (GAIA_SPEC 2): done = completed; keep polling = processing, received, running,
running_inference, processing_output; failed = failed, error, fetch_error. Anything else, or no
answer, counts as a used poll; after the last poll the job fails with the reason.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from gaia_dagster.core.retry import StageRetry
from gaia_dagster.db.repository import ResponseRecord, ValidatorRepository, now_utc
from gaia_dagster.resources.miner_client import MinerClient, MinerClientError

DONE = frozenset({"completed"})
KEEP_POLLING = frozenset({"processing", "received", "running", "running_inference", "processing_output"})
FAILED = frozenset({"failed", "error", "fetch_error"})


@dataclass(frozen=True)
class PollDecision:
    response: ResponseRecord
    action: str  # ready | waiting | failed | not_due
    detail: str = ""


def due_for_poll(responses: list[ResponseRecord], now: datetime) -> list[ResponseRecord]:
    """In-flight jobs whose next poll time has come."""
    return [r for r in responses if r.status == "inference_running"
            and (r.next_attempt_at is None or r.next_attempt_at <= now)]


def classify(status: str) -> str:
    """Map a miner's poll status onto ready / waiting / failed (rule: GAIA_SPEC 2 status sets)."""
    if status in DONE:
        return "ready"
    if status in KEEP_POLLING:
        return "waiting"
    if status in FAILED:
        return "failed"
    return "unknown"


def poll_in_flight(repo: ValidatorRepository, client: MinerClient, retry: StageRetry,
                   dagster_run_id: str | None = None, now: datetime | None = None,
                   concurrency: int = 32) -> list[PollDecision]:
    """Poll every due job concurrently and record each attempt; returns one decision per job."""
    now = now or now_utc()
    due = due_for_poll(repo.in_flight_responses(), now)
    answers = client.poll_many([(r.miner_base_url, r.miner_hotkey, r.job_id) for r in due], concurrency)
    return [_decide(repo, r, a, retry, now, dagster_run_id) for r, a in zip(due, answers)]


def _decide(repo: ValidatorRepository, row: ResponseRecord, answer, retry: StageRetry,  # noqa: ANN001
            now: datetime, dagster_run_id: str | None) -> PollDecision:
    """Record one poll attempt and decide what follows."""
    attempt = row.poll_attempts + 1
    who = f"miner {row.miner_hotkey}, job {row.job_id}"
    if isinstance(answer, MinerClientError):
        kind, detail = "unknown", str(answer)
    else:
        kind, detail = classify(answer.status), f"{who}: status {answer.status!r}: {answer.message}"
    if kind == "ready":
        repo.update_response(row.id, "inference_running", poll_attempts=attempt, next_attempt_at=None)
        return PollDecision(repo.response_by_id(row.id), "ready", detail)
    if kind == "failed":
        error = f"{who}: inference failed on the miner: {answer.message or answer.status}"
        repo.transition_response(row.id, "inference_running", "failed", dagster_run_id, error=error)
        return PollDecision(repo.response_by_id(row.id), "failed", error)
    if retry.exhausted(attempt):
        error = f"{who}: no forecast after {attempt} polls; last: {detail}"
        repo.transition_response(row.id, "inference_running", "failed", dagster_run_id, error=error,
                                 poll_attempts=attempt)
        return PollDecision(repo.response_by_id(row.id), "failed", error)
    repo.update_response(row.id, "inference_running", poll_attempts=attempt,
                         next_attempt_at=retry.next_attempt_at(now, attempt))
    return PollDecision(repo.response_by_id(row.id), "waiting", detail)

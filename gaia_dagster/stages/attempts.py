"""Attempts of a scoring stage: one retry mechanism, failures that tell the truth.

Every attempt of ``day1`` or ``era5`` is one Dagster run. The attempt is claimed in the validator DB
(``{stage}_attempts`` + 1, next attempt cleared) before any work, so two runs can never score one
job at once. What an attempt ends in:

- scored: the job moves on; the run succeeds.
- the miner's forecast is invalid (``ForecastRejected``): the job fails with the reason, no retry.
- the store reads below the fast lane's floor (``SlowStore``): the attempt is given back and the
  job is read again at once in the slow lane (``to_slow_lane``), whose runs the instance limits.
- the miner's verified store does not answer (HTTP 503, a hang cut at the fetch deadline): the
  job is retried after the stage's backoff like a validator-side fault, and fails as the miner's
  after the last attempt; it never holds the other miners' scores or the day's leaderboard.
- a validator-side fault (source, cache, DB, a bug): the job stays where it is, the fault is
  recorded, and the next attempt is due after the stage's backoff; the sensors launch it. After
  the last attempt nothing is scheduled: the job keeps its status, so a rerun or a backfill of that
  partition re-scores it. The run fails either way.
- nothing to score (the job failed earlier, is not ready, or another run holds it): the run fails
  and says why; it never reports success without a score.

A worker killed mid-attempt leaves its claim behind; the stale-work reaper makes the next attempt
due once the lease has passed and no run holds the partition.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Callable, TypeVar

from gaia_dagster.core.answers import MAX_STORED_TEXT, stored_text
from gaia_dagster.core.retry import StageRetry
from gaia_dagster.core.states import ResponseStatus
from gaia_dagster.db.repository import LostTransition, ResponseRecord, ValidatorRepository, now_utc
from gaia_dagster.resources.miner_client import MinerClientError, SlowStore
from gaia_dagster.stages.lifecycle import fail_job, start_stage

T = TypeVar("T")
NO_ATTEMPT_LEFT = "no attempt left: rerun or backfill this partition to re-score it"


class ForecastRejected(Exception):
    """The miner's forecast is invalid: fail the job, do not retry."""


class StageRefused(Exception):
    """There is nothing this attempt may score (the job failed earlier, is not ready, or is busy)."""


class ValidatorFault(Exception):
    """An attempt failed on the validator's side; the job is left re-scorable."""


def who(row: ResponseRecord) -> str:
    """How errors name a job: the miner and the run."""
    return f"miner {row.miner_hotkey}, run T0={row.gfs_init_time:%Y-%m-%dT%HZ}, job {row.job_id}"


@dataclass(frozen=True)
class StageSpec:
    """The statuses a scoring stage moves a job through."""

    name: str       # day1 | era5 (also the attempt counter's prefix)
    ready: str
    working: str
    done: str
    partial: str | None = None   # resting status between progressive arrivals (ERA5 only)

    @property
    def startable(self) -> tuple[str, ...]:
        """Statuses an attempt may start from: ready, or resting after an earlier arrival."""
        return (self.ready, self.partial) if self.partial else (self.ready,)


DAY1 = StageSpec("day1", ResponseStatus.FORECAST_READY.value, ResponseStatus.DAY1_SCORING.value,
                 ResponseStatus.DAY1_SCORED.value)
ERA5 = StageSpec("era5", ResponseStatus.DAY1_SCORED.value, ResponseStatus.ERA5_SCORING.value,
                 ResponseStatus.ERA5_SCORED.value, ResponseStatus.ERA5_PARTIAL.value)
STAGES = {DAY1.name: DAY1, ERA5.name: ERA5}
_LINE = [s.value for s in ResponseStatus if s is not ResponseStatus.FAILED]


def attempts_of(row: ResponseRecord, stage: str) -> int:
    """Attempts of ``stage`` taken so far on this job."""
    return row.day1_attempts if stage == "day1" else row.era5_attempts


def is_past(status: str, done: str) -> bool:
    """True when ``status`` is ``done`` or later on the job's main line."""
    return status in _LINE and _LINE.index(status) >= _LINE.index(done)


def claim(repo: ValidatorRepository, row: ResponseRecord, spec: StageSpec,
          dagster_run_id: str | None) -> tuple[ResponseRecord, int] | None:
    """Take the next attempt: ``ready -> working`` when needed, then the attempt counter by
    compare-and-set. None when the job is already done (a rerun of a scored partition)."""
    current = repo.response_by_id(row.id)
    if current.status == ResponseStatus.FAILED.value:
        raise StageRefused(f"{who(current)}: the job failed earlier and is not scored again: {current.error}")
    if is_past(current.status, spec.done):
        return None
    if current.status not in (*spec.startable, spec.working):
        raise StageRefused(f"{who(current)}: not ready for {spec.name} scoring (status {current.status})")
    try:
        if current.status in spec.startable:
            start_stage(repo, current.id, current.status, spec.working, dagster_run_id)
    except LostTransition as exc:
        raise StageRefused(f"{who(current)}: another run took this {spec.name} attempt") from exc
    attempts = attempts_of(repo.response_by_id(row.id), spec.name)
    if not repo.claim_attempt(row.id, spec.name, spec.working, attempts, next_attempt_at=None):
        raise StageRefused(f"{who(current)}: another run took this {spec.name} attempt")
    return repo.response_by_id(row.id), attempts + 1


def record_fault(repo: ValidatorRepository, row: ResponseRecord, spec: StageSpec, attempt: int,
                 retry: StageRetry, exc: BaseException, now: datetime | None = None) -> str:
    """Rule: a validator-side fault schedules the next attempt after the stage's backoff, or, after
    the last one, leaves the job in its working status for a rerun; returns the message."""
    now = now or now_utc()
    fault = stored_text(f"{type(exc).__name__}: {exc}", MAX_STORED_TEXT // 2)  # the message's tail stays
    if retry.exhausted(attempt):
        message = (f"{who(row)}: {spec.name} attempt {attempt} of {retry.max_attempts} failed on the validator's "
                   f"side ({fault}); {NO_ATTEMPT_LEFT}")
        next_at = None
    else:
        next_at = retry.next_attempt_at(now, attempt)
        message = (f"{who(row)}: {spec.name} attempt {attempt} of {retry.max_attempts} failed on the validator's "
                   f"side ({fault}); next attempt at {next_at:%Y-%m-%dT%H:%M:%SZ}")
    repo.update_response(row.id, spec.working, next_attempt_at=next_at, error=message)
    return message


def store_unreadable(repo: ValidatorRepository, row: ResponseRecord, spec: StageSpec, attempt: int,
                     retry: StageRetry, exc: MinerClientError, dagster_run_id: str | None = None,
                     now: datetime | None = None) -> str:
    """Rule: a verified store the miner stops serving is retried after the stage's backoff; after the
    last attempt the job fails as the miner's (it verified, then would not be read). Returns the message."""
    reason = stored_text(str(exc), MAX_STORED_TEXT // 2)
    if retry.exhausted(attempt):
        message = (f"{who(row)}: the miner's verified store could not be read for {spec.name} scoring in "
                   f"{attempt} attempts; last: {reason}")
        fail_job(repo, row.id, spec.working, message, dagster_run_id)
        return message
    next_at = retry.next_attempt_at(now or now_utc(), attempt)
    message = (f"{who(row)}: {spec.name} attempt {attempt} of {retry.max_attempts}: the miner's store could not be "
               f"read ({reason}); next attempt at {next_at:%Y-%m-%dT%H:%M:%SZ}")
    repo.update_response(row.id, spec.working, next_attempt_at=next_at, error=message)
    return message


def to_slow_lane(repo: ValidatorRepository, row: ResponseRecord, spec: StageSpec, attempt: int,
                 exc: SlowStore, now: datetime | None = None) -> str:
    """Rule (run slots shared fairly): a store read below the fast lane's floor is no one's fault.
    The attempt is given back, the job is marked slow (``slow_store_at``: every later read of it is
    in the slow lane, whose runs the instance limits) and its next attempt is due at once."""
    now = now or now_utc()
    message = f"{who(row)}: {spec.name} attempt {attempt} moved to the slow lane: {stored_text(str(exc), MAX_STORED_TEXT // 2)}"
    repo.update_response(row.id, spec.working, slow_store_at=now, next_attempt_at=now, error=message,
                         **{f"{spec.name}_attempts": attempt - 1})
    return message


def run_attempt(repo: ValidatorRepository, row: ResponseRecord, spec: StageSpec, retry: StageRetry,
                work: Callable[[ResponseRecord], T], finish: Callable[[ResponseRecord, T], None],
                already_done: Callable[[ResponseRecord], T], dagster_run_id: str | None = None) -> T:
    """One attempt of a scoring stage, as the module docstring describes: ``work`` computes,
    ``finish`` stores the result and moves the job to ``done``; a scored job answers ``already_done``."""
    claimed = claim(repo, row, spec, dagster_run_id)
    if claimed is None:
        return already_done(repo.response_by_id(row.id))
    current, attempt = claimed
    try:
        result = work(current)
    except ForecastRejected as exc:
        fail_job(repo, current.id, spec.working, str(exc), dagster_run_id)  # bounded where stored (stored_text)
        raise
    except SlowStore as exc:
        raise SlowStore(to_slow_lane(repo, current, spec, attempt, exc)) from exc
    except MinerClientError as exc:
        raise MinerClientError(store_unreadable(repo, current, spec, attempt, retry, exc, dagster_run_id)) from exc
    except Exception as exc:  # noqa: BLE001 - every other fault is the validator's, and retried
        raise ValidatorFault(record_fault(repo, current, spec, attempt, retry, exc)) from exc
    finish(current, result)
    return result


def held_by_own_retry(row: ResponseRecord) -> bool:
    """Rule (one miner never holds the day): a scoring job waiting for its own next attempt, or for
    a rerun after its last, does not hold the day's leaderboard back; the leaderboard is rebuilt once
    that job is scored or fails."""
    return row.status in (DAY1.ready, DAY1.working, ERA5.working) and (
        row.next_attempt_at is not None or NO_ATTEMPT_LEFT in (row.error or ""))


def due_retries(rows: list[ResponseRecord], spec: StageSpec, retry: StageRetry, now: datetime) -> list[ResponseRecord]:
    """Jobs of ``spec`` whose validator-side retry is due (and that have an attempt left)."""
    return [r for r in rows if r.status in (spec.ready, spec.working) and r.next_attempt_at is not None
            and r.next_attempt_at <= now and not retry.exhausted(attempts_of(r, spec.name))]

"""The run and miner-response state machines (requirement: weather-pipeline-refactor, section 5).

The statuses and valid transitions of the refactor plan, plus one resting state for progressive
ERA5 scoring: ``era5_partial``, a job scored on the leads ERA5 covers so far, which goes back to
``era5_scoring`` when the next lead arrives and ends in ``era5_scored`` once every lead is scored.
Terminal states have no exit.
"""

from __future__ import annotations

from enum import Enum


class RunStatus(str, Enum):
    """Status of a daily run (one row per GFS init time T0)."""

    CREATED = "created"
    GFS_DOWNLOADING = "gfs_downloading"
    GFS_READY = "gfs_ready"
    QUERYING_MINERS = "querying_miners"
    SCORING_DAY1 = "scoring_day1"
    AWAITING_ERA5 = "awaiting_era5"
    SCORING_ERA5 = "scoring_era5"
    COMPLETED = "completed"
    ERROR = "error"


class ResponseStatus(str, Enum):
    """Status of one miner's response to one run."""

    CREATED = "created"
    FETCH_INITIATED = "fetch_initiated"
    INFERENCE_RUNNING = "inference_running"
    FORECAST_READY = "forecast_ready"
    DAY1_SCORING = "day1_scoring"
    DAY1_SCORED = "day1_scored"
    ERA5_SCORING = "era5_scoring"
    ERA5_PARTIAL = "era5_partial"
    ERA5_SCORED = "era5_scored"
    FAILED = "failed"


RESPONSE_TRANSITIONS: dict[str, frozenset[str]] = {
    "created": frozenset({"fetch_initiated", "failed"}),
    "fetch_initiated": frozenset({"inference_running", "failed"}),
    "inference_running": frozenset({"forecast_ready", "failed"}),
    "forecast_ready": frozenset({"day1_scoring", "failed"}),
    "day1_scoring": frozenset({"day1_scored", "failed"}),
    "day1_scored": frozenset({"era5_scoring"}),
    "era5_scoring": frozenset({"era5_partial", "era5_scored", "failed"}),
    "era5_partial": frozenset({"era5_scoring"}),
    "era5_scored": frozenset(),
    "failed": frozenset(),
}

# The plan lists the run statuses in pipeline order; a run moves forward along it (stages may be
# skipped when there is nothing to do, e.g. no miner delivered), or to error from any live state.
_RUN_ORDER = [s.value for s in RunStatus if s is not RunStatus.ERROR]
RUN_TRANSITIONS: dict[str, frozenset[str]] = {
    status: frozenset(_RUN_ORDER[i + 1:]) | ({"error"} if status != "completed" else set())
    for i, status in enumerate(_RUN_ORDER)
}
RUN_TRANSITIONS["error"] = frozenset()

IN_FLIGHT_RESPONSE_STATUSES = frozenset({"fetch_initiated", "inference_running"})
TERMINAL_RESPONSE_STATUSES = frozenset({"era5_scored", "failed"})
ERA5_SCORED_STATUSES = frozenset({"era5_partial", "era5_scored"})
"""Jobs holding an ERA5 score: final (every lead) or so far (the leads ERA5 covers yet)."""


class InvalidTransition(ValueError):
    """A transition the state machine does not allow."""


def check_transition(table: dict[str, frozenset[str]], current: str, new: str, what: str) -> None:
    """Refuse a transition that is not in the machine's table (rule: strict state machine)."""
    if current not in table:
        raise InvalidTransition(f"{what}: unknown status {current!r}")
    if new not in table[current]:
        allowed = ", ".join(sorted(table[current])) or "none (terminal)"
        raise InvalidTransition(f"{what}: {current} -> {new} is not a valid transition (allowed: {allowed})")


def response_path(current: str, target: str) -> list[str]:
    """The forward steps from ``current`` to ``target`` along the response machine's main line (the
    resting ``era5_partial`` is a side step, not on it)."""
    line = [s.value for s in ResponseStatus if s not in (ResponseStatus.FAILED, ResponseStatus.ERA5_PARTIAL)]
    if current not in line or target not in line or line.index(target) < line.index(current):
        raise InvalidTransition(f"no forward path from {current} to {target}")
    return line[line.index(current) + 1: line.index(target) + 1]


# What a miner answers to ``/weather-poll-job-status`` (GAIA_SPEC 2): done, keep polling, failed on
# the miner; ``not_found`` (the miner has no such job) and anything else are a failed poll attempt.
MINER_POLL_DONE = frozenset({"completed"})
MINER_POLL_WORKING = frozenset({"processing", "received", "running", "running_inference", "processing_output"})
MINER_POLL_FAILED = frozenset({"failed", "error", "fetch_error"})
MINER_POLL_NOT_FOUND = "not_found"


class WeightStatus(str, Enum):
    """What became of the weights computed for one slot (``core/weights_cadence``)."""

    RECORDED = "recorded"      # dry-run: the exact call recorded, nothing sent
    SUBMITTED = "submitted"    # the chain accepted the call
    FAILED = "failed"          # the chain refused it (rate limit, error) or it could not be sent
    NOTHING = "nothing_to_set"  # the weight path gave no vector: nothing to set in this slot


class JobEvent(str, Enum):
    """What the Dagster layer shows when a job enters a status: its partition materialized (a stage
    done), failed (the job failed, with its reason), or nothing yet (work in progress)."""

    MATERIALIZED = "materialized"
    FAILED = "failed"
    NONE = "none"


STAGE_DONE_STATUSES = frozenset({ResponseStatus.INFERENCE_RUNNING.value, ResponseStatus.FORECAST_READY.value,
                                 ResponseStatus.DAY1_SCORED.value, ResponseStatus.ERA5_PARTIAL.value,
                                 ResponseStatus.ERA5_SCORED.value})


def job_event(status: str) -> JobEvent:
    """The Dagster event of entering ``status``: failed shows failed, a finished stage materialized."""
    if status == ResponseStatus.FAILED.value:
        return JobEvent.FAILED
    return JobEvent.MATERIALIZED if status in STAGE_DONE_STATUSES else JobEvent.NONE


class MinerJobStatus(str, Enum):
    """The statuses a miner answers (GAIA_SPEC 2): initiate-fetch's and the poll's."""

    FETCH_ACCEPTED = "fetch_accepted"
    RECEIVED = "received"
    PROCESSING = "processing"
    RUNNING_INFERENCE = "running_inference"
    COMPLETED = "completed"
    FAILED = "failed"
    ERROR = "error"
    NOT_FOUND = "not_found"

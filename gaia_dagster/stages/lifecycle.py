"""The one owner of every status change of a run and of a job.

Stages, sensors, assets and the reaper ask this module to move a job or a run; nothing else in the
package writes a status. Each function names the transition it makes, the state machine
(``core/states.py``) decides whether it is legal, the repository's compare-and-set makes it once
(and audits it), and the result carries the Dagster event it stands for (``core.states.job_event``):
a finished stage materializes its partition, a failed job fails it, with the reason recorded on
the job.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from gaia_dagster.core.states import JobEvent, ResponseStatus, RunStatus, job_event, response_path
from gaia_dagster.db.repository import ResponseRecord, ValidatorRepository

S, R = ResponseStatus, RunStatus


@dataclass(frozen=True)
class Moved:
    """A job after a transition, and the Dagster event that transition stands for."""

    job: ResponseRecord
    event: JobEvent


def _move(repo: ValidatorRepository, job_id: int, expected: str, new: str, dagster_run_id: str | None,
          fields: dict[str, Any]) -> Moved:
    repo.transition_response(job_id, expected, new, dagster_run_id, **fields)
    return Moved(repo.response_by_id(job_id), job_event(new))


def fail_job(repo: ValidatorRepository, job_id: int, expected: str, reason: str, dagster_run_id: str | None = None,
             **fields: Any) -> Moved:
    """``expected -> failed`` with ``reason`` on the job (bounded where stored): its partition fails."""
    return _move(repo, job_id, expected, S.FAILED.value, dagster_run_id, {**fields, "error": reason})


def start_inference(repo: ValidatorRepository, job_id: int, dagster_run_id: str | None = None, **fields: Any) -> Moved:
    """The miner accepted the job: ``created -> fetch_initiated -> inference_running``, the store's
    URL and claimed hash (``fields``) recorded with the second step, the last error cleared."""
    _move(repo, job_id, S.CREATED.value, S.FETCH_INITIATED.value, dagster_run_id, {"error": None, "next_attempt_at": None})
    return _move(repo, job_id, S.FETCH_INITIATED.value, S.INFERENCE_RUNNING.value, dagster_run_id, fields)


def forecast_verified(repo: ValidatorRepository, job_id: int, manifest_hash: str,
                      dagster_run_id: str | None = None) -> Moved:
    """``inference_running -> forecast_ready`` with the verified manifest's hash."""
    return _move(repo, job_id, S.INFERENCE_RUNNING.value, S.FORECAST_READY.value, dagster_run_id,
                 {"verification_hash_computed": manifest_hash, "error": None})


def start_stage(repo: ValidatorRepository, job_id: int, expected: str, working: str,
                dagster_run_id: str | None = None) -> Moved:
    """A scoring stage takes the job: its ready (or resting) status ``-> working``."""
    return _move(repo, job_id, expected, working, dagster_run_id, {})


def finish_stage(repo: ValidatorRepository, job_id: int, working: str, done: str, dagster_run_id: str | None = None,
                 **fields: Any) -> Moved:
    """A scoring stage is done with the job: ``working -> done`` (scored, or resting between ERA5
    arrivals)."""
    return _move(repo, job_id, working, done, dagster_run_id, fields)


def walk_job(repo: ValidatorRepository, job_id: int, target: str, dagster_run_id: str | None = None) -> Moved:
    """Forward along the job's main line from where it is to ``target``, one audited step at a time."""
    current = repo.response_by_id(job_id).status
    moved = Moved(repo.response_by_id(job_id), job_event(current))
    for step in response_path(current, target):
        moved = _move(repo, job_id, current, step, dagster_run_id, {})
        current = step
    return moved


def advance_run(repo: ValidatorRepository, run_id: int, target: RunStatus, dagster_run_id: str | None = None) -> bool:
    """Move the day's run forward to ``target`` unless it is there or beyond (idempotent)."""
    return repo.advance_run(run_id, target.value, dagster_run_id)

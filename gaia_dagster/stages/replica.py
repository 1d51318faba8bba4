"""Replica-sync resilience (requirement: deterministic-job-ids, "Database Synchronization Resilience").

Validator replicas overwrite each other's databases. A job must still be found after that:
1. by its exact job ID; then
2. by the same GFS timestep and the same validator; then
3. by the same GFS timestep and any validator.
The GFS timestep must match exactly (no tolerance: another cycle's weather is another forecast).
A job found by a fallback is reconciled to its deterministic ID, and the lookup is counted.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta

from gaia_dagster.core.job_ids import DeterministicJobID, weather_job_id
from gaia_dagster.db.repository import ResponseRecord, ValidatorRepository, now_utc

LOOKUP_STAGE = "job_lookup"
NO_JOB = "no_job"  # the lookup found no job at any fallback level


@dataclass(frozen=True)
class JobLookup:
    response: ResponseRecord | None
    strategy: str  # exact | same_validator | any_validator | NO_JOB


def _timestep_of(job_id: str, gfs_init_time: datetime | None) -> datetime | None:
    """The GFS time of a lookup: given, or parsed from a readable weather key."""
    if gfs_init_time is not None:
        return gfs_init_time
    try:
        return DeterministicJobID.parse_weather_job_key(job_id)[1]
    except ValueError:
        return None


def find_job(repo: ValidatorRepository, job_id: str, miner_hotkey: str, gfs_init_time: datetime | None = None,
             validator_hotkey: str | None = None) -> JobLookup:
    """Find a job by exact ID, then same timestep + validator, then same timestep + any validator."""
    exact = repo.response_by_job_id(job_id)
    if exact is not None and exact.miner_hotkey == miner_hotkey:
        return JobLookup(exact, "exact")
    t0 = _timestep_of(job_id, gfs_init_time)
    if t0 is None:
        return JobLookup(None, NO_JOB)
    strategies = [("same_validator", validator_hotkey)] if validator_hotkey else []
    strategies.append(("any_validator", None))
    for strategy, validator in strategies:
        found = repo.responses_for_timestep(t0, miner_hotkey, validator)
        if found:
            repo.record_duplicate(LOOKUP_STAGE, f"{job_id}->{found[0].job_id}", outcome="fallback",
                                  detail=f"database sync resilience: found equivalent job {found[0].job_id} "
                                         f"for missing job {job_id} ({strategy})")
            return JobLookup(found[0], strategy)
    return JobLookup(None, NO_JOB)


def reconcile_job_id_for_validator(repo: ValidatorRepository, miner_job_id: str, miner_hotkey: str,
                                   gfs_init_time: datetime, validator_hotkey: str | None = None) -> str | None:
    """The deterministic job ID for (T0, miner); a stored equivalent job is moved onto it.

    Returns None when no equivalent job exists on this validator.
    """
    expected = weather_job_id(gfs_init_time, miner_hotkey)
    lookup = find_job(repo, miner_job_id, miner_hotkey, gfs_init_time, validator_hotkey)
    if lookup.response is None:
        lookup = find_job(repo, expected, miner_hotkey, gfs_init_time, validator_hotkey)
    if lookup.response is None:
        return None
    if lookup.response.job_id != expected:
        repo.replace_job_id(lookup.response.id, lookup.response.job_id, expected)
    return expected


@dataclass
class JobIdHealth:
    stats: dict[str, int]
    mismatches: list[dict[str, str]] = field(default_factory=list)

    @property
    def healthy(self) -> bool:
        return self.stats["mismatches_24h"] == 0 and self.stats["legacy_ids"] == 0


def check_job_id_health(repo: ValidatorRepository, now: datetime | None = None,
                        window: timedelta = timedelta(hours=24)) -> JobIdHealth:
    """Job-ID health over a window: mismatches, sync issues, unique validators, legacy IDs."""
    now = now or now_utc()
    since = now - window
    recent = repo.responses_created_since(since)
    mismatches = [{"job_id": r.job_id, "expected": weather_job_id(r.gfs_init_time, r.miner_hotkey),
                   "miner": r.miner_hotkey, "validator": r.validator_hotkey}
                  for r in recent if r.job_id != weather_job_id(r.gfs_init_time, r.miner_hotkey)]
    legacy = repo.job_id_mismatches()
    stats = {
        "jobs_24h": len(recent),
        "deterministic_24h": len(recent) - len(mismatches),
        "mismatches_24h": len(mismatches),
        "sync_issues_24h": repo.duplicate_events_since(LOOKUP_STAGE, since) + len(mismatches),
        "unique_validators_24h": len({r.validator_hotkey for r in recent}),
        "legacy_ids": len(legacy),
    }
    return JobIdHealth(stats, mismatches)

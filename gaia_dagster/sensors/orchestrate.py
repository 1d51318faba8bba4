"""Orchestration (the plan's singleton stage): select the run's miners, then one forecast request
per selected miner that has no job yet."""

from dagster import DefaultSensorStatus, RunRequest, SensorEvaluationContext, SensorResult, SkipReason, sensor

from gaia_dagster.assets.partitions import date_miner_key, miner_partitions
from gaia_dagster.core.selection import Candidate, select_miners
from gaia_dagster.db.repository import RunRecord, ValidatorRepository
from gaia_dagster.core.states import ResponseStatus
from gaia_dagster.jobs import forecast_request_job, integrity_checks_job
from gaia_dagster.resources.validator_db import ValidatorDB
from gaia_dagster.sensors.intervals import sensor_interval

QUERYABLE_RUN_STATUSES = ("gfs_ready", "querying_miners")


def run_selection(repo: ValidatorRepository, run: RunRecord, partitioned: set[str]) -> list[str]:
    """The run's selected miners: computed once from the seeded order and recorded with the skipped
    ones; a skipped inactive miner has served its penalty and starts the next run clean."""
    recorded = repo.selection(run.id)
    if not recorded:
        candidates = [Candidate(m.hotkey, m.active) for m in repo.miners() if m.hotkey in partitioned]
        selection = select_miners(run.run_key, candidates)
        repo.record_selection(run.id, selection)
        for hotkey, _ in selection.skipped:
            repo.reset_liveness(hotkey)
        recorded = repo.selection(run.id)
    return [r.miner_hotkey for r in recorded if r.selected]


def requests_settled(repo: ValidatorRepository, run: RunRecord) -> bool:
    """Rule: a run's request batch is settled once every selected miner has a job past ``created``
    (accepted, or failed for good)."""
    selected = {r.miner_hotkey for r in repo.selection(run.id) if r.selected}
    rows = {r.miner_hotkey: r for r in repo.responses(run_id=run.id)}
    return bool(selected) and all(h in rows and rows[h].status != ResponseStatus.CREATED.value for h in selected)


def integrity_check_requests(repo: ValidatorRepository) -> list[RunRequest]:
    """One run of the integrity checks per day, once its forecast requests have settled."""
    return [RunRequest(run_key=f"{run.gfs_init_time:%Y-%m-%d}|integrity|requests", job_name=integrity_checks_job.name,
                       tags={"gaia/stage": "integrity", "gaia/date": f"{run.gfs_init_time:%Y-%m-%d}"})
            for run in repo.all_runs() if run.status not in ("completed", "error") and requests_settled(repo, run)]


def forecast_requests(repo: ValidatorRepository, partitioned: set[str]) -> list[RunRequest]:
    """Requests for every (seeded run, selected miner) that has no job yet (check before execute)."""
    requests = []
    for run in repo.all_runs():
        if run.status not in QUERYABLE_RUN_STATUSES:
            continue
        date_key = f"{run.gfs_init_time:%Y-%m-%d}"
        have = {r.miner_hotkey for r in repo.responses(run_id=run.id)}
        requests += [RunRequest(run_key=f"{date_key}|{hotkey}|query|1", partition_key=date_miner_key(date_key, hotkey),
                                job_name=forecast_request_job.name,
                                tags={"gaia/stage": "query", "gaia/miner": hotkey})
                     for hotkey in run_selection(repo, run, partitioned) if hotkey not in have]
    return requests


@sensor(name="miner_orchestration_sensor", minimum_interval_seconds=sensor_interval(30),
        jobs=[forecast_request_job, integrity_checks_job],
        default_status=DefaultSensorStatus.RUNNING,
        description="For each seeded run: selects miners in an order seeded by the run's deterministic ID "
                    "(inactive ones skipped and recorded), then requests a forecast from each selected miner "
                    "that has no job yet; runs the integrity checks once the day's requests have settled.")
def miner_orchestration_sensor(context: SensorEvaluationContext, validator_db: ValidatorDB) -> SensorResult | SkipReason:
    partitioned = set(context.instance.get_dynamic_partitions(miner_partitions.name))
    requests = forecast_requests(validator_db.repo, partitioned) + integrity_check_requests(validator_db.repo)
    if not requests:
        return SkipReason("every seeded run has a job for every selected miner")
    return SensorResult(run_requests=requests)

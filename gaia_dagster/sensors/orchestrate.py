"""Orchestration (the plan's singleton stage): one forecast request per active miner per seeded run."""


from dagster import DefaultSensorStatus, RunRequest, SensorEvaluationContext, SensorResult, SkipReason, sensor

from gaia_dagster.assets.partitions import date_miner_key, miner_partitions
from gaia_dagster.db.repository import ValidatorRepository
from gaia_dagster.jobs import forecast_request_job
from gaia_dagster.resources.validator_db import ValidatorDB

QUERYABLE_RUN_STATUSES = ("gfs_ready", "querying_miners")


def forecast_requests(repo: ValidatorRepository, partitioned: set[str]) -> list[RunRequest]:
    """Requests for every (seeded run, active miner) that has no job yet (check before execute)."""
    active = [m.hotkey for m in repo.miners(active_only=True) if m.hotkey in partitioned]
    requests = []
    for run in repo.all_runs():
        if run.status not in QUERYABLE_RUN_STATUSES:
            continue
        date_key = f"{run.gfs_init_time:%Y-%m-%d}"
        have = {r.miner_hotkey for r in repo.responses(run_id=run.id)}
        requests += [RunRequest(run_key=f"{date_key}|{hotkey}|query|1", partition_key=date_miner_key(date_key, hotkey),
                                job_name=forecast_request_job.name,
                                tags={"gaia/stage": "query", "gaia/miner": hotkey})
                     for hotkey in active if hotkey not in have]
    return requests


@sensor(name="miner_orchestration_sensor", minimum_interval_seconds=30, jobs=[forecast_request_job], default_status=DefaultSensorStatus.RUNNING,
        description="For each seeded run, requests a forecast from every active miner that has no job yet.")
def miner_orchestration_sensor(context: SensorEvaluationContext, validator_db: ValidatorDB) -> SensorResult | SkipReason:
    partitioned = set(context.instance.get_dynamic_partitions(miner_partitions.name))
    requests = forecast_requests(validator_db.repo, partitioned)
    if not requests:
        return SkipReason("every seeded run has a job for every active miner")
    return SensorResult(run_requests=requests)

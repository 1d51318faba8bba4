"""The stale-work reaper: work stuck past its lease goes back to a retryable state or fails."""

from dagster import DefaultSensorStatus, SensorEvaluationContext, SensorResult, SkipReason, sensor

from gaia_dagster.jobs import era5_score_job, forecast_job
from gaia_dagster.resources.miner import MinerAccess
from gaia_dagster.resources.validator_db import ValidatorDB
from gaia_dagster.sensors.poll import partition_busy, stage_run_request
from gaia_dagster.stages.reaper import reap_stale_work

STAGE_JOBS = {"day1": forecast_job.name, "era5": era5_score_job.name}


@sensor(name="stale_work_reaper", minimum_interval_seconds=120, jobs=[forecast_job, era5_score_job],
        default_status=DefaultSensorStatus.RUNNING,
        description="Jobs untouched past a 10-minute lease (a worker killed mid-stage) go back to a "
                    "retryable state, or fail after their stage's last attempt; never duplicated.")
def stale_work_reaper(context: SensorEvaluationContext, validator_db: ValidatorDB,
                      miner_access: MinerAccess) -> SensorResult | SkipReason:
    repo = validator_db.repo
    retries = {stage: miner_access.retry(stage) for stage in ("query", "day1", "era5")}
    requests = []
    for item in reap_stale_work(repo, retries):
        row = item.response
        context.log.warning(f"miner {row.miner_hotkey}: {item.action} ({item.stage}): {item.detail}")
        if item.action != "rerun":
            continue
        partition = f"{row.gfs_init_time:%Y-%m-%d}|{row.miner_hotkey}"
        if not partition_busy(context, partition):
            attempts = row.day1_attempts if item.stage == "day1" else row.era5_attempts
            requests.append(stage_run_request(row, f"reap-{item.stage}", attempts, STAGE_JOBS[item.stage]))
    if not requests:
        return SkipReason("no stale work")
    return SensorResult(run_requests=requests)

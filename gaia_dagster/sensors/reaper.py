"""The stale-work reaper: work stuck past its lease gets its next attempt due (see stages.reaper)."""

from dagster import DefaultSensorStatus, SensorEvaluationContext, SensorResult, SkipReason, sensor

from gaia_dagster.resources.miner import MinerAccess
from gaia_dagster.resources.validator_db import ValidatorDB
from gaia_dagster.sensors.intervals import sensor_interval
from gaia_dagster.sensors.poll import partition_busy, partition_of
from gaia_dagster.stages.reaper import reap_stale_work


@sensor(name="stale_work_reaper", minimum_interval_seconds=sensor_interval(120),
        default_status=DefaultSensorStatus.RUNNING,
        description="Jobs untouched past a 10-minute lease with no run holding their partition (a worker "
                    "killed mid-stage) get their next attempt due; the stage's own retry takes it from there.")
def stale_work_reaper(context: SensorEvaluationContext, validator_db: ValidatorDB,
                      miner_access: MinerAccess) -> SensorResult | SkipReason:
    retries = {stage: miner_access.retry(stage) for stage in ("query", "day1", "era5")}
    reaped = reap_stale_work(validator_db.repo, retries, busy=lambda row: partition_busy(context, partition_of(row)))
    for item in reaped:
        context.log.warning(f"miner {item.response.miner_hotkey}: {item.action} ({item.stage}): {item.detail}")
    if not reaped:
        return SkipReason("no stale work")
    return SensorResult(run_requests=[])

"""The stale-work reaper: work stuck past its lease gets its next attempt due (see stages.reaper)."""

from dagster import DagsterRunStatus, DefaultSensorStatus, RunsFilter, SensorEvaluationContext, SensorResult, SkipReason, sensor

from gaia_dagster.resources.miner import MinerAccess
from gaia_dagster.resources.validator_db import ValidatorDB
from gaia_dagster.sensors.intervals import sensor_interval
from gaia_dagster.sensors.poll import ACTIVE_RUN_STATUSES, partition_of
from gaia_dagster.stages.reaper import reap_stale_work

ENDED = (DagsterRunStatus.FAILURE, DagsterRunStatus.CANCELED)


@sensor(name="stale_work_reaper", minimum_interval_seconds=sensor_interval(120),
        default_status=DefaultSensorStatus.RUNNING,
        description="Jobs whose run died holding them (run monitoring failed it), or untouched past a "
                    "10-minute lease, with no run holding their partition, get their next attempt due; the "
                    "stage's own retry takes it from there.")
def stale_work_reaper(context: SensorEvaluationContext, validator_db: ValidatorDB,
                      miner_access: MinerAccess) -> SensorResult | SkipReason:
    retries = {stage: miner_access.retry(stage) for stage in ("query", "day1", "era5")}
    def runs_of(row) -> list:  # noqa: ANN001
        """The partition's latest runs, newest first (records carry their end time)."""
        return context.instance.get_run_records(RunsFilter(tags={"dagster/partition": partition_of(row)}), limit=20)

    def busy(row) -> bool:  # noqa: ANN001
        return any(r.dagster_run.status in ACTIVE_RUN_STATUSES for r in runs_of(row))

    def orphaned(row) -> bool:  # noqa: ANN001
        """The latest run of the partition ended (failed) after the job last moved: it died holding it."""
        runs = runs_of(row)
        return bool(runs) and runs[0].dagster_run.status in ENDED and runs[0].end_time is not None and \
            row.updated_at is not None and runs[0].end_time >= row.updated_at.timestamp()

    reaped = reap_stale_work(validator_db.repo, retries, busy=busy, orphaned=orphaned)
    for item in reaped:
        context.log.warning(f"miner {item.response.miner_hotkey}: {item.action} ({item.stage}): {item.detail}")
    if not reaped:
        return SkipReason("no stale work")
    return SensorResult(run_requests=[])

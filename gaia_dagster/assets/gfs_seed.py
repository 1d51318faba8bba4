"""``gfs_seed[date]``: the day's run row and the GFS fields day-1 scoring needs, cached once."""


from dagster import AssetExecutionContext, MaterializeResult, MetadataValue, asset

from gaia_dagster.assets.partitions import daily_partitions, gfs_init_time
from gaia_dagster.resources.sources import WeatherSources
from gaia_dagster.resources.validator_db import ValidatorDB
from gaia_dagster.core.states import RunStatus
from gaia_dagster.stages.lifecycle import advance_run
from gaia_dagster.stages.scoring import seed_gfs


@asset(partitions_def=daily_partitions, group_name="gaia", kinds={"python", "zarr"},
       description="The daily run (one per GFS T0) and the GFS analysis at T0+12h and f012 forecast "
                   "that day-1 scoring compares against, cached on disk.")
def gfs_seed(context: AssetExecutionContext, validator_db: ValidatorDB, sources: WeatherSources) -> MaterializeResult:
    repo = validator_db.repo
    t0 = gfs_init_time(context.partition_key)
    run, created = repo.get_or_create_run(t0)
    advance_run(repo, run.id, RunStatus.GFS_DOWNLOADING, context.run_id)
    paths = seed_gfs(sources, t0)
    advance_run(repo, run.id, RunStatus.GFS_READY, context.run_id)
    run = repo.run_by_id(run.id)
    context.log.info(f"run {run.id} for T0={t0:%Y-%m-%dT%HZ} ({'new' if created else 'reused'})")
    return MaterializeResult(metadata={
        "run_id": run.id, "run_key": run.run_key, "gfs_init_time": t0.isoformat(),
        "run_created": created, "run_status": run.status,
        "cached": MetadataValue.json({k: str(v) for k, v in paths.items()}),
    })

"""``miner_forecast[date|miner]`` and ``day1_score[date|miner]``: verify a completed forecast and
score it against the GFS analysis the same evening. The poll sensor launches both in one run;
a day-1 retry runs ``day1_score`` alone (see ``stages.attempts``)."""


from dagster import AssetDep, AssetExecutionContext, MaterializeResult, asset

from gaia_dagster.assets.links import miner_link
from gaia_dagster.assets.partitions import MINER_IO_POOL, date_miner_partitions, to_date
from gaia_dagster.assets.plots import metrics_table, miner_metadata
from gaia_dagster.assets.stage_runs import stage_call, response_for_partition
from gaia_dagster.core.contract import Grid
from gaia_dagster.core.scoring.variables import required_variables
from gaia_dagster.resources.miner import MinerAccess
from gaia_dagster.resources.sources import WeatherSources
from gaia_dagster.resources.validator_db import ValidatorDB
from gaia_dagster.core.states import RunStatus
from gaia_dagster.stages.forecast import verify_forecast
from gaia_dagster.stages.lifecycle import advance_run
from gaia_dagster.stages.scoring import score_day1_stage


@asset(partitions_def=date_miner_partitions, group_name="gaia", pool=MINER_IO_POOL, kinds={"python", "zarr"},
       deps=["forecast_request"],
       description="The miner's forecast store, verified: manifest hash, signer, signature, every "
                   "chunk read re-hashed, and the data contract (variables, levels, grid, 40 steps).")
def miner_forecast(context: AssetExecutionContext, validator_db: ValidatorDB, miner_access: MinerAccess,
                   sources: WeatherSources) -> MaterializeResult:
    repo, row = response_for_partition(validator_db, context.partition_key)
    with stage_call(context):
        result = verify_forecast(repo, miner_access.client(), row, sources.cache_root(), Grid(sources.resolution),
                                 context.run_id, required_variables(sources.era5_entries()))
    return MaterializeResult(metadata={
        "outcome": result.outcome, "job_id": row.job_id, "status": result.response.status,
        "manifest_hash": result.manifest_hash, "files_fetched": result.files_fetched,
        "bytes_fetched": result.bytes_fetched,
        "zarr_store_url": miner_link(result.response.zarr_store_url or row.miner_base_url, row.miner_base_url),
        **miner_metadata(repo, row.miner_hotkey),
    })


@asset(partitions_def=date_miner_partitions, group_name="gaia", pool=MINER_IO_POOL, kinds={"python"},
       deps=["miner_forecast", AssetDep("gfs_seed", partition_mapping=to_date)],
       description="Day-1 score (GAIA_SPEC 4): lead 12 h against the GFS analysis, with the GFS f012 "
                   "forecast as reference and the clone penalty.")
def day1_score(context: AssetExecutionContext, validator_db: ValidatorDB, miner_access: MinerAccess,
               sources: WeatherSources) -> MaterializeResult:
    repo, row = response_for_partition(validator_db, context.partition_key)
    with stage_call(context):
        result = score_day1_stage(repo, miner_access.client(), sources, row, context.run_id, miner_access.retry("day1"))
    advance_run(repo, row.run_id, RunStatus.SCORING_DAY1, context.run_id)
    return MaterializeResult(metadata={
        "outcome": result.outcome, "day1_score": result.score, "scoring_profile": result.profile,
        "clone_clamped": result.clone_clamped,
        "metrics": metrics_table(result.rows), **miner_metadata(repo, row.miner_hotkey),
    })

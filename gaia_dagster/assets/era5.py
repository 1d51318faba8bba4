"""``era5_truth[date]`` and ``era5_score[date|miner]``: ERA5 scoring once the reanalysis covers the run."""


from dagster import AssetDep, AssetExecutionContext, Failure, MaterializeResult, MetadataValue, asset

from gaia_dagster.assets.stage_runs import stage_call, response_for_partition
from gaia_dagster.assets.partitions import MINER_IO_POOL, daily_partitions, date_miner_partitions, gfs_init_time, to_date
from gaia_dagster.assets.plots import (
    lead_scores_table, metrics_table, miner_label, miner_metadata, score_by_lead_chart,
)
from gaia_dagster.resources.miner import MinerAccess
from gaia_dagster.resources.sources import WeatherSources
from gaia_dagster.resources.validator_db import ValidatorDB
from gaia_dagster.core.states import RunStatus
from gaia_dagster.stages.era5_arrivals import LEADS_CACHED, due_leads
from gaia_dagster.stages.lifecycle import advance_run
from gaia_dagster.stages.scoring import score_era5_stage, seed_era5


@asset(partitions_def=daily_partitions, group_name="gaia", kinds={"python", "zarr"},
       description="ERA5 at the run's scorable valid times, cached once per valid time. The ERA5 "
                   "availability sensor materializes it again as each lead becomes scorable "
                   "(ERA5 covers T0+h and T0+h+5d6h has passed).")
def era5_truth(context: AssetExecutionContext, sources: WeatherSources) -> MaterializeResult:
    t0 = gfs_init_time(context.partition_key)
    due = due_leads(sources, t0)
    if not due:
        raise Failure(f"era5_truth {context.partition_key}: no ERA5 lead is scorable yet")
    paths = seed_era5(sources, t0, due)
    return MaterializeResult(metadata={
        "gfs_init_time": t0.isoformat(), LEADS_CACHED: len(paths),
        "leads": MetadataValue.json(list(paths)),
        "cached": MetadataValue.json({str(k): str(v) for k, v in paths.items()}),
    })


@asset(partitions_def=date_miner_partitions, group_name="gaia", pool=MINER_IO_POOL, kinds={"python"},
       deps=["miner_forecast", AssetDep("era5_truth", partition_mapping=to_date)],
       description="ERA5 score (GAIA_SPEC 5): every variable and level at leads 24..240 h against ERA5, "
                   "lead by lead as ERA5 arrives (a lead not scored yet counts 0).")
def era5_score(context: AssetExecutionContext, validator_db: ValidatorDB, miner_access: MinerAccess,
               sources: WeatherSources) -> MaterializeResult:
    repo, row = response_for_partition(validator_db, context.partition_key)
    with stage_call(context):
        result = score_era5_stage(repo, miner_access.client(), sources, row, context.run_id, miner_access.retry("era5"),
                                  due=due_leads(sources, row.gfs_init_time))
    advance_run(repo, row.run_id, RunStatus.SCORING_ERA5, context.run_id)
    return MaterializeResult(metadata={
        "outcome": result.outcome, "era5_score": result.score, "scoring_profile": result.profile,
        "leads_scored": len(result.lead_scores),
        "final": result.complete,
        "lead_scores": lead_scores_table(result.lead_scores),
        "score_by_lead": score_by_lead_chart(result.lead_scores, miner_label(repo, row.miner_hotkey)),
        "metrics": metrics_table(result.rows), **miner_metadata(repo, row.miner_hotkey),
    })

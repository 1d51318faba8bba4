"""``regional_scorecards[date]``: every scored miner's regional scorecard for the day (issue 19)."""

from dagster import AssetDep, AssetExecutionContext, MaterializeResult, MetadataValue, asset

from gaia_dagster.assets.partitions import daily_partitions, to_date
from gaia_dagster.assets.plots import uid_label
from gaia_dagster.assets.scorecard_plots import scorecard_charts, scorecard_table, shown_fields
from gaia_dagster.assets.stage_runs import run_for_partition
from gaia_dagster.core.scoring.regions import WB2_REGIONS
from gaia_dagster.db.scorecards import run_regional_fields, run_regional_scores
from gaia_dagster.resources.validator_db import ValidatorDB


@asset(partitions_def=daily_partitions, group_name="gaia", kinds={"python"},
       deps=[AssetDep("era5_score", partition_mapping=to_date)],
       description="Regional scorecards (WeatherBench2 regions): per miner, every ERA5-scored field and lead's "
                   "RMSE, bias, ACC and skill over each region, taken in the ERA5 score's own pass; a picture "
                   "per miner (blue better, red worse than climatology) and the headline fields as a table. "
                   "They inform people; no score or weight reads them.")
def regional_scorecards(context: AssetExecutionContext, validator_db: ValidatorDB) -> MaterializeResult:
    repo, run = run_for_partition(validator_db, context.partition_key)
    shown = {hotkey: shown_fields(held) for hotkey, held in run_regional_fields(repo, run.id).items()}
    by_miner = run_regional_scores(repo, run.id, fields=shown)
    uids = {m.hotkey: m.uid for m in repo.miners()}
    charts = scorecard_charts(by_miner, {h: uid_label(h, uids.get(h)) for h in by_miner})
    pictures = {f"scorecard_{uids.get(h) if uids.get(h) is not None else h[:8]}": chart for h, chart in charts.items()}
    return MaterializeResult(metadata={
        "miners_with_scorecards": len(by_miner),
        "regions": MetadataValue.json([r.name for r in WB2_REGIONS]),
        **pictures,
        "scorecard": scorecard_table(by_miner, uids),
    })

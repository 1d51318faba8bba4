"""``miner_scores[date]``: overall score per miner, the leaderboard and the weights."""


from dagster import AssetExecutionContext, MaterializeResult, asset

from gaia_dagster.assets.partitions import daily_partitions, to_date
from gaia_dagster.assets.plots import leaderboard_chart, leaderboard_table, selection_table
from gaia_dagster.assets.scorecard_plots import RANK_COLUMNS, rank_interval_chart
from gaia_dagster.assets.stage_runs import run_for_partition
from gaia_dagster.core.states import ResponseStatus
from gaia_dagster.resources.validator_db import ValidatorDB
from gaia_dagster.stages.ranks import window_ranks
from gaia_dagster.stages.scoring import leaderboard
from dagster import AssetDep


@asset(partitions_def=daily_partitions, group_name="gaia", kinds={"python"},
       deps=[AssetDep("era5_score", partition_mapping=to_date), AssetDep("day1_score", partition_mapping=to_date)],
       description="Overall = 0.95 * ERA5 + 0.05 * [Day1 >= 0.1] per miner (GAIA_SPEC 5), the day's "
                   "leaderboard and the weights it implies.")
def miner_scores(context: AssetExecutionContext, validator_db: ValidatorDB) -> MaterializeResult:
    repo, run = run_for_partition(validator_db, context.partition_key)
    board = leaderboard(repo, run.id, context.run_id)
    uids = {m.hotkey: m.uid for m in repo.miners()}
    ranks = {r.hotkey: r for r in window_ranks(repo, run)}
    rows = [{**e.as_row(), "uid": uids.get(e.hotkey), **_rank_cells(ranks.get(e.hotkey))} for e in board]
    selection = [{"position": s.position, "uid": uids.get(s.miner_hotkey), "hotkey": s.miner_hotkey,
                  "selected": s.selected, "reason": s.reason}
                 for s in repo.selection(run.id)]
    return MaterializeResult(metadata={
        "miners": len(rows), "scored": sum(1 for e in board if e.status == ResponseStatus.ERA5_SCORED.value),
        "partly_scored": sum(1 for e in board if e.status == ResponseStatus.ERA5_PARTIAL.value),
        "best_overall": max((e.overall_score for e in board), default=0.0),
        "leaderboard": leaderboard_table(rows, RANK_COLUMNS),
        "leaderboard_chart": leaderboard_chart(rows),
        "rank_intervals": rank_interval_chart(rows),
        "selection": selection_table(selection),
        "selection_seed": run.run_key,
    })


def _rank_cells(ranked) -> dict:  # noqa: ANN001
    """The 15-day rank columns of a leaderboard row (``core.scoring.ranks.RankedMiner``)."""
    if ranked is None:
        return {}
    return {"mean_15d": ranked.mean_score, "rank_15d": ranked.rank, "rank_low": ranked.rank_low,
            "rank_high": ranked.rank_high, "p_vs_next": ranked.next_p_value, "beats_next": ranked.next_significant}

"""``day_view[date]``: the day at a glance, kept current by ``day_view_sensor`` while the day runs.

Every miner with its stage, status, reason, day-1 score, ERA5 progress and the weight the latest
weights slot gives its UID; the day's totals (asked, answered, verified, scored, failed by cause);
a chart of where the miners are. Rules in ``core/day_view.py``.
"""

from dagster import AssetExecutionContext, MaterializeResult, MetadataValue, TableColumn, asset

from gaia_dagster.assets.partitions import daily_partitions
from gaia_dagster.assets.plots import _figure, png_markdown, records_table
from gaia_dagster.assets.stage_runs import run_for_partition
from gaia_dagster.core.day_view import FAILED_STAGE, day_totals, view_row
from gaia_dagster.db.day_view import day_jobs
from gaia_dagster.db.weights import weight_records
from gaia_dagster.resources.validator_db import ValidatorDB

DAY_COLUMNS = [
    TableColumn("uid", "int", "the miner's UID"),
    TableColumn("miner", "string", "its hotkey, shortened (in full under hotkeys)"),
    TableColumn("stage", "string", "where its job is: requested, inference, verified, day-1 scored, ERA5, scored, failed"),
    TableColumn("cause", "string", "for a failed job, the stage it failed in"),
    TableColumn("reason", "string", "why it failed, on one line"),
    TableColumn("day1", "float", "day-1 score (4 significant digits)"),
    TableColumn("era5", "float", "ERA5 score so far"),
    TableColumn("era5_leads", "string", "ERA5 leads scored of 10"),
    TableColumn("weight", "float", "its UID's weight in the latest weights slot"),
]
TOTAL_COLUMNS = [TableColumn("count", "string", "what is counted"), TableColumn("jobs", "int", "how many")]


def stage_chart(rows: list[dict]) -> MetadataValue:
    """Bar chart: how many miners are at each stage (failed split by cause)."""
    counts: dict[str, int] = {}
    for row in rows:
        label = f"{FAILED_STAGE}: {row['cause']}" if row["stage"] == FAILED_STAGE else row["stage"]
        counts[label] = counts.get(label, 0) + 1
    if not counts:
        return MetadataValue.md("_no jobs yet_")
    labels = sorted(counts, key=lambda k: (k.startswith(FAILED_STAGE), k))
    figure = _figure()
    axes = figure.add_subplot()
    axes.barh(range(len(labels)), [counts[k] for k in labels],
              color=["tab:red" if k.startswith(FAILED_STAGE) else "tab:blue" for k in labels])
    axes.set_yticks(range(len(labels)), labels, fontsize=8)
    axes.set_xlabel("miners")
    axes.set_title("where the day's miners are", fontsize=10)
    axes.grid(axis="x", alpha=0.3)
    figure.tight_layout()
    return png_markdown(figure, "day stages")


@asset(partitions_def=daily_partitions, group_name="gaia", kinds={"python"},
       description="The day at a glance: every miner's stage, status, reason, day-1 score, ERA5 progress and "
                   "weight, the day's totals (asked, answered, verified, scored, failed by cause) and a chart. "
                   "Refreshed by day_view_sensor while the day runs.")
def day_view(context: AssetExecutionContext, validator_db: ValidatorDB) -> MaterializeResult:
    repo, run = run_for_partition(validator_db, context.partition_key)
    latest = weight_records(repo, limit=1)
    jobs = day_jobs(repo, run.id, latest[0].vector if latest else None)
    rows = [view_row(j) for j in jobs]
    asked = sum(1 for s in repo.selection(run.id) if s.selected) or len(jobs)
    totals = day_totals(jobs, asked)
    return MaterializeResult(metadata={
        "run_status": run.status, "miners": records_table(rows, DAY_COLUMNS),
        "totals": records_table([{"count": k, "jobs": v} for k, v in totals.items()], TOTAL_COLUMNS),
        "stages": stage_chart(rows), **{k: v for k, v in totals.items()},
        "hotkeys": MetadataValue.json({row["miner"]: job.hotkey for row, job in zip(rows, jobs)}),
        "weights_slot": latest[0].slot_key if latest else "",
    })

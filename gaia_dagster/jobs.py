"""Asset jobs, one per stage. A Dagster job's assets share one partitions definition, so the
daily stages and the per-miner stages are separate jobs; sensors and the schedule target them.

The integrity checks (no duplicate jobs, deterministic job IDs) query the whole validator DB, so
they run once per batch, not after every per-miner run: in ``integrity_checks_job`` once a day's
forecast requests have all settled, and with every ``miner_scores`` run (blocking: no leaderboard
and no weights from a DB that holds a duplicate).
"""

from __future__ import annotations

from dagster import AssetSelection, define_asset_job

from gaia_dagster.assets.partitions import daily_partitions, date_miner_partitions

INTEGRITY_CHECKS = AssetSelection.checks_for_assets("forecast_request")


def _stage(*assets: str) -> AssetSelection:
    """A per-miner stage's assets without the integrity checks (those run per batch)."""
    return AssetSelection.assets(*assets).without_checks()


daily_seed_job = define_asset_job("daily_seed_job", selection=AssetSelection.assets("gfs_seed"),
                                  partitions_def=daily_partitions,
                                  description="Singleton stage: the day's run row and GFS fields.")
forecast_request_job = define_asset_job(
    "forecast_request_job", selection=_stage("forecast_request"), partitions_def=date_miner_partitions,
    description="Per-miner stage: initiate-fetch under the deterministic job ID.")
forecast_job = define_asset_job(
    "forecast_job", selection=_stage("miner_forecast", "day1_score"), partitions_def=date_miner_partitions,
    description="Per-miner stages: verify the completed forecast and score day-1 in the same run.")
era5_truth_job = define_asset_job("era5_truth_job", selection=AssetSelection.assets("era5_truth"),
                                  partitions_def=daily_partitions, description="Cache the day's ERA5 truth.")
era5_score_job = define_asset_job("era5_score_job", selection=_stage("era5_score"),
                                  partitions_def=date_miner_partitions, description="Per-miner ERA5 score.")
miner_scores_job = define_asset_job(
    "miner_scores_job", selection=AssetSelection.assets("miner_scores", "regional_scorecards") | INTEGRITY_CHECKS,
    partitions_def=daily_partitions,
    description="The integrity checks, then the day's leaderboard and its weights, and the miners' regional "
                "scorecards.")
chain_weights_job = define_asset_job(
    "chain_weights_job", selection=AssetSelection.assets("chain_weights"),
    description="One slot of the chain's cadence: the weights by UID, recorded with the exact call and set on "
                "the chain when GAIA_WEIGHTS=submit (weights_cadence_sensor starts it).")
day_view_job = define_asset_job("day_view_job", selection=AssetSelection.assets("day_view"),
                                partitions_def=daily_partitions,
                                description="The day at a glance (day_view_sensor refreshes it while the day runs).")
integrity_checks_job = define_asset_job(
    "integrity_checks_job", selection=INTEGRITY_CHECKS,
    description="No duplicate jobs and deterministic job IDs over the whole validator DB (once per batch).")

ALL_JOBS = [daily_seed_job, forecast_request_job, forecast_job, era5_truth_job, era5_score_job, miner_scores_job,
            chain_weights_job, day_view_job, integrity_checks_job]

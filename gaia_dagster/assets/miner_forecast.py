"""``miner_forecast[date|miner]`` and ``day1_score[date|miner]``: verify a completed forecast and
score it against the GFS analysis the same evening. The poll sensor launches both in one run."""


import os

from dagster import (
    AssetDep, Backoff, AssetExecutionContext, Failure, MaterializeResult, MetadataValue, RetryPolicy, asset,
)

from gaia_dagster.assets.partitions import MINER_IO_POOL, date_miner_partitions, gfs_init_time, split_key, to_date
from gaia_dagster.assets.plots import metrics_table
from gaia_dagster.core.contract import Grid
from gaia_dagster.core.retry import retry_policies
from gaia_dagster.db.repository import ResponseRecord, ValidatorRepository
from gaia_dagster.resources.miner import MinerAccess
from gaia_dagster.resources.sources import WeatherSources
from gaia_dagster.resources.validator_db import ValidatorDB
from gaia_dagster.stages.forecast import ForecastRejected, verify_forecast, who
from gaia_dagster.stages.scoring import score_day1_stage

RETRY_SCALE = float(os.environ.get("GAIA_RETRY_SCALE", "1.0"))


def dagster_retry_policy(stage: str) -> RetryPolicy:
    """The refactor plan's retry settings of a per-miner stage as a Dagster retry policy, visible on
    the asset in the UI: day-1 3 attempts at 300/600/1200 s (exponential), ERA5 5 at 3600 s.
    Delays scale with ``GAIA_RETRY_SCALE`` (the demo compresses time)."""
    policy = retry_policies(RETRY_SCALE)[stage]
    delays = policy.backoff_s
    exponential = len(delays) > 1 and delays[1] > delays[0]
    return RetryPolicy(max_retries=policy.max_attempts - 1, delay=delays[0],
                       backoff=Backoff.EXPONENTIAL if exponential else None)


day1_retry_policy = dagster_retry_policy("day1")
era5_retry_policy = dagster_retry_policy("era5")


def _response(validator_db: ValidatorDB, partition_key):  # noqa: ANN001
    """The validator DB row behind a date x miner partition (it must exist by now)."""
    repo = validator_db.repo
    date_key, hotkey = split_key(partition_key)
    run = repo.run_for_init_time(gfs_init_time(date_key))
    row = repo.response_for(run.id, hotkey) if run else None
    if row is None:
        raise Failure(f"miner {hotkey}, run {date_key}: no forecast job exists; request it first")
    return repo, row


def run_stage(context: AssetExecutionContext, repo: ValidatorRepository, row: ResponseRecord, working_status: str,
              stage):  # noqa: ANN001
    """Run a per-miner stage: invalid data fails the job at once; any other error is retried by
    Dagster and fails the job (with the reason) after the last retry, so no job is left stuck."""
    try:
        return stage()
    except ForecastRejected as exc:
        raise Failure(description=str(exc), allow_retries=False) from exc
    except Exception as exc:
        if context.retry_number >= (context.op_def.retry_policy.max_retries if context.op_def.retry_policy else 0):
            current = repo.response_by_id(row.id)
            if current.status == working_status:
                repo.transition_response(row.id, working_status, "failed", context.run_id,
                                         error=f"{who(row)}: {type(exc).__name__}: {exc} "
                                               f"(after {context.retry_number + 1} attempts)")
        raise


@asset(partitions_def=date_miner_partitions, group_name="gaia", pool=MINER_IO_POOL, kinds={"python", "zarr"},
       deps=["forecast_request"], retry_policy=day1_retry_policy,
       description="The miner's forecast store, verified: manifest hash, signer, signature, every "
                   "chunk read re-hashed, and the data contract (variables, levels, grid, 40 steps).")
def miner_forecast(context: AssetExecutionContext, validator_db: ValidatorDB, miner_access: MinerAccess,
                   sources: WeatherSources) -> MaterializeResult:
    repo, row = _response(validator_db, context.partition_key)
    result = run_stage(context, repo, row, "inference_running", lambda: verify_forecast(
        repo, miner_access.client(), row, sources.cache_root(), Grid(sources.resolution), context.run_id))
    return MaterializeResult(metadata={
        "outcome": result.outcome, "job_id": row.job_id, "status": result.response.status,
        "manifest_hash": result.manifest_hash, "files_fetched": result.files_fetched,
        "bytes_fetched": result.bytes_fetched,
        "zarr_store_url": MetadataValue.url(result.response.zarr_store_url or row.miner_base_url),
    })


@asset(partitions_def=date_miner_partitions, group_name="gaia", pool=MINER_IO_POOL, kinds={"python"},
       deps=["miner_forecast", AssetDep("gfs_seed", partition_mapping=to_date)],
       retry_policy=day1_retry_policy,
       description="Day-1 score (GAIA_SPEC 4): lead 12 h against the GFS analysis, with the GFS f012 "
                   "forecast as reference and the clone penalty.")
def day1_score(context: AssetExecutionContext, validator_db: ValidatorDB, miner_access: MinerAccess,
               sources: WeatherSources) -> MaterializeResult:
    repo, row = _response(validator_db, context.partition_key)
    result = run_stage(context, repo, row, "day1_scoring",
                       lambda: score_day1_stage(repo, miner_access.client(), sources, row, context.run_id))
    repo.advance_run(row.run_id, "scoring_day1", context.run_id)
    return MaterializeResult(metadata={
        "outcome": result.outcome, "day1_score": result.score, "clone_clamped": result.clone_clamped,
        "metrics": metrics_table(result.rows),
    })

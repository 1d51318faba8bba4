"""``forecast_request[date|miner]``: initiate-fetch under the deterministic job ID, once."""


from dagster import AssetDep, AssetExecutionContext, Failure, MaterializeResult, MetadataValue, asset

from gaia_dagster.assets.links import miner_link
from gaia_dagster.assets.partitions import MINER_IO_POOL, date_miner_partitions, gfs_init_time, split_key, to_date
from gaia_dagster.assets.plots import miner_metadata
from gaia_dagster.assets.stage_runs import stage_call
from gaia_dagster.core.states import ResponseStatus, RunStatus
from gaia_dagster.resources.metrics import counter_totals
from gaia_dagster.resources.miner import MinerAccess
from gaia_dagster.resources.validator_db import ValidatorDB
from gaia_dagster.stages.lifecycle import advance_run
from gaia_dagster.stages.request import request_forecast


@asset(partitions_def=date_miner_partitions, group_name="gaia", pool=MINER_IO_POOL, kinds={"python"},
       deps=[AssetDep("gfs_seed", partition_mapping=to_date)],
       description="The miner's forecast job for the day: created once under its deterministic ID and "
                   "requested once. A rerun finds the job and is skipped as duplicate_skipped.")
def forecast_request(context: AssetExecutionContext, validator_db: ValidatorDB, miner_access: MinerAccess) -> MaterializeResult:
    repo = validator_db.repo
    date_key, hotkey = split_key(context.partition_key)
    miner = repo.miner(hotkey)
    if miner is None:
        raise Failure(f"miner {hotkey} is not in the validator's registry; run the miner registry sensor first")
    with stage_call(context):
        outcome = request_forecast(repo, miner_access.client(), miner, gfs_init_time(date_key),
                                   miner_access.validator_hotkey(), miner_access.retry("query"), context.run_id)
    row = outcome.response
    advance_run(repo, row.run_id, RunStatus.QUERYING_MINERS, context.run_id)
    metadata = {
        "outcome": outcome.outcome, "job_id": row.job_id, "status": row.status,
        "query_attempts": row.query_attempts, "detail": MetadataValue.text(outcome.detail or ""),
        "miner_url": miner_link(row.miner_base_url, row.miner_base_url), **miner_metadata(repo, hotkey),
        **counter_totals(repo),
    }
    # The request exists once the miner accepted it: anything else fails the run with its reason
    # (a retry still to come, the last attempt gone, a job that failed earlier), in one line.
    failed_earlier = outcome.outcome == "duplicate_skipped" and row.status == ResponseStatus.FAILED.value
    if outcome.outcome in (ResponseStatus.FAILED.value, "retry_scheduled", "retry_not_due") or failed_earlier:
        if row.next_attempt_at:
            metadata["next_attempt_at"] = row.next_attempt_at.isoformat()
        reason = row.error if failed_earlier else outcome.detail
        message = f"miner {hotkey}, run {date_key}: {outcome.outcome}: {reason}"
        context.log.warning(message)
        raise Failure(description=message, metadata=metadata, allow_retries=False)
    context.log.info(f"miner {hotkey}: {outcome.outcome} (job {row.job_id})")
    return MaterializeResult(metadata=metadata)

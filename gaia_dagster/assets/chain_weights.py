"""``chain_weights[date]``: the day's weights as the chain takes them, by UID; dry-run by default."""

from dagster import AssetExecutionContext, MaterializeResult, MetadataValue, TableColumn, asset

from gaia_dagster.assets.partitions import daily_partitions, gfs_init_time
from gaia_dagster.assets.plots import records_table
from gaia_dagster.resources.chain import SubnetChain
from gaia_dagster.resources.miner import MinerAccess
from gaia_dagster.resources.registry import MinerRegistry
from gaia_dagster.resources.validator_db import ValidatorDB
from gaia_dagster.stages.weights import set_day_weights

WEIGHT_COLUMNS = [
    TableColumn("uid", "int", "the UID the weight is set on (held by this hotkey now)"),
    TableColumn("hotkey", "string", "the miner's hotkey, in full"),
    TableColumn("weight", "float", "the leaderboard weight (15-day look-back, sums to 1)"),
    TableColumn("u16", "int", "the value submitted: the largest 65535, within the max-weight limit"),
    TableColumn("share", "float", "u16 over the sum of u16: what the chain normalises to"),
]


@asset(partitions_def=daily_partitions, group_name="gaia", kinds={"python"}, deps=["miner_scores"],
       description="The day's weights in the chain's form (by UID, u16, within the subnet's max-weight limit) "
                   "and, when GAIA_WEIGHTS=submit, set on the chain (set_weights, or a timelocked commit when "
                   "the subnet runs commit-reveal). Dry-run by default: records exactly what it would submit.")
def chain_weights(context: AssetExecutionContext, validator_db: ValidatorDB, miner_registry: MinerRegistry,
                  chain: SubnetChain, miner_access: MinerAccess) -> MaterializeResult:
    repo = validator_db.repo
    run = repo.run_for_init_time(gfs_init_time(context.partition_key))
    if run is None:
        raise ValueError(f"run {context.partition_key}: no run exists for this date")
    signer = miner_access.identity().keypair if chain.submits() else None
    outcome = set_day_weights(repo, run, miner_registry, chain, signer)
    plan, rules = outcome.weights, outcome.weights.rules
    if outcome.submitted is not None:
        context.log.info(f"weights set on {chain.describe()}: {outcome.submitted}")
    return MaterializeResult(metadata={
        "mode": "submitted" if outcome.submitted is not None else "dry-run",
        "netuid": rules.netuid,
        "version_key": rules.version_key,
        "submission_path": "commit-reveal (timelocked commit)" if rules.commit_reveal else "set_weights",
        "max_weight_limit": rules.max_weight_limit,
        "min_allowed_weights": rules.min_allowed_weights,
        "rules_from": outcome.rules_source,
        "uids": MetadataValue.json(list(plan.uids)),
        "u16_values": MetadataValue.json(list(plan.values)),
        "weights": records_table(plan.rows(), WEIGHT_COLUMNS),
        "largest_share": plan.largest_share(),
        "without_uid": MetadataValue.json(list(plan.unassigned)),
        "problems": MetadataValue.json(list(plan.problems)),
        "submission": MetadataValue.json(outcome.submitted) if outcome.submitted is not None else MetadataValue.null(),
    })

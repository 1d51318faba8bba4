"""``chain_weights``: the weights of one slot of the chain's cadence, by UID; dry-run by default.

Materialized by ``weights_cadence_sensor`` once per slot (Gaia's 250 blocks, or the subnet's rate
limit when longer), not per score arrival. A submission the chain refuses fails the run, visibly,
with the vector kept in the validator DB; the next slot tries again.
"""

from dagster import AssetExecutionContext, Failure, MaterializeResult, MetadataValue, TableColumn, asset

from gaia_dagster.assets.plots import records_table
from gaia_dagster.core.weights_cadence import WeightSlot
from gaia_dagster.db.repository import now_utc
from gaia_dagster.resources.chain import SubnetChain
from gaia_dagster.resources.miner import MinerAccess
from gaia_dagster.resources.registry import MinerRegistry
from gaia_dagster.resources.sources import WeatherSources
from gaia_dagster.resources.validator_db import ValidatorDB
from gaia_dagster.stages.weights import WeightSubmissionFailed, set_slot_weights, slot_weights

SLOT_TAG = "gaia/weights_slot"

WEIGHT_COLUMNS = [
    TableColumn("uid", "int", "the UID the weight is set on"),
    TableColumn("hotkey", "string", "the hotkey holding that UID now, in full"),
    TableColumn("mean_score", "float", "deployed: the UID's mean over Gaia's score rows of the last 15 days"),
    TableColumn("weight", "float", "the weight handed to the chain call (sums to 1)"),
    TableColumn("u16", "int", "the value the chain receives: the largest 65535"),
    TableColumn("share", "float", "u16 over the sum of u16: what the chain normalises to"),
]


@asset(group_name="gaia", kinds={"python"}, deps=["miner_scores"],
       description="The weights of one slot of the chain's cadence: under the deployed profile exactly the "
                   "vector Gaia v2.9.96's validators set (75% burn, logistic curve, float32 normalisation, u16), "
                   "under sound the leaderboard's 15-day weights; recorded with the exact chain call, and set on "
                   "the chain when GAIA_WEIGHTS=submit. A refused submission fails the run; the next slot retries.")
def chain_weights(context: AssetExecutionContext, validator_db: ValidatorDB, miner_registry: MinerRegistry,
                  chain: SubnetChain, miner_access: MinerAccess, sources: WeatherSources) -> MaterializeResult:
    repo = validator_db.repo
    slot_key = context.run.tags.get(SLOT_TAG) or f"weights|manual|{context.run_id}"
    weights = slot_weights(repo, miner_registry, chain, sources.scoring_profile, now_utc())
    signer = miner_access.identity().keypair if chain.submits() else None
    metadata = {
        "slot": slot_key, "block": weights.block, "profile": weights.profile,
        "mode": "submit" if chain.submits() else "dry-run", "netuid": weights.rules.netuid,
        "version_key": weights.rules.version_key, "call": MetadataValue.json(weights.call()),
        "uids": MetadataValue.json(weights.uids), "u16_values": MetadataValue.json(weights.u16),
        "weights": records_table(weights.rows, WEIGHT_COLUMNS),
        "vector": MetadataValue.json(weights.vector) if weights.vector is not None else MetadataValue.null(),
        "reason": weights.reason, **{k: _metadata(v) for k, v in weights.details.items()},
    }
    try:
        status, answer = set_slot_weights(repo, slot_key, weights, chain, signer)
    except WeightSubmissionFailed as exc:
        raise Failure(description=str(exc), metadata=metadata) from exc
    if answer is not None:
        context.log.info(f"weights set on {chain.describe()}: {answer}")
    if weights.vector is None:
        context.log.warning(f"slot {slot_key}: nothing to set: {weights.reason}")
    return MaterializeResult(metadata={**metadata, "status": status,
                                       "submission": MetadataValue.json(answer) if answer else MetadataValue.null()})


def _metadata(value):  # noqa: ANN001, ANN202
    """A detail as metadata: lists as JSON, None as null, numbers and text as they are."""
    if value is None:
        return MetadataValue.null()
    return MetadataValue.json(value) if isinstance(value, (list, dict)) else value


def slot_tags(slot: WeightSlot) -> dict[str, str]:
    """The run tags that carry a slot to ``chain_weights``."""
    return {SLOT_TAG: slot.key, "gaia/stage": "chain_weights", "gaia/block": str(slot.block)}

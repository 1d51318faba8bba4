"""The chain's cadence: one ``chain_weights`` run per slot (``core/weights_cadence``)."""

from dagster import DefaultSensorStatus, RunRequest, SensorEvaluationContext, SkipReason, sensor

from gaia_dagster.assets.chain_weights import slot_tags
from gaia_dagster.core.states import WeightStatus
from gaia_dagster.core.weights_cadence import BLOCK_SECONDS, open_slot, simulated_block, weights_interval
from gaia_dagster.db.repository import now_utc
from gaia_dagster.db.weights import last_weights_block
from gaia_dagster.jobs import chain_weights_job
from gaia_dagster.resources.chain import SubnetChain
from gaia_dagster.resources.miner import MinerAccess
from gaia_dagster.resources.validator_db import ValidatorDB
from gaia_dagster.sensors.intervals import sensor_interval


def last_weights(validator_db: ValidatorDB, chain: SubnetChain, miner_access: MinerAccess,
                 neurons: list) -> int | None:
    """The block of this validator's last weights: the chain's ``LastUpdate`` of its UID when it
    submits, else the block of its last slot that recorded a dry run or had nothing to set."""
    if chain.configured and chain.submits():
        own = miner_access.identity().ss58
        mine = [n for n in neurons if n.hotkey == own]
        if not mine:
            raise ValueError(f"this validator's hotkey {own} holds no UID on {chain.describe()}: it cannot set weights")
        return mine[0].last_update
    return last_weights_block(validator_db.repo, (WeightStatus.RECORDED.value, WeightStatus.SUBMITTED.value,
                                                  WeightStatus.NOTHING.value))


# no slot can open between two blocks: never look more often than a block is made
@sensor(name="weights_cadence_sensor", minimum_interval_seconds=max(BLOCK_SECONDS, sensor_interval(60)),
        job=chain_weights_job,
        default_status=DefaultSensorStatus.RUNNING,
        description="Sets weights on the chain's cadence, as Gaia's validator does: once 250 blocks (or the "
                    "subnet's weights rate limit, when longer) have passed since this validator's last weights, "
                    "one chain_weights run per slot; a failed slot is retried at the next.")
def weights_cadence_sensor(context: SensorEvaluationContext, validator_db: ValidatorDB, chain: SubnetChain,
                           miner_access: MinerAccess) -> RunRequest | SkipReason:
    if chain.configured:
        block, neurons = chain.metagraph()
        rate_limit = chain.weight_rules().rate_limit
    else:
        block, neurons, rate_limit = simulated_block(now_utc()), [], 0
    last = last_weights(validator_db, chain, miner_access, neurons)
    interval = weights_interval(rate_limit, chain.interval_blocks())
    slot = open_slot(block, last, interval)
    if slot is None:
        return SkipReason(f"block {block}: next weights at block {last + interval} "
                          f"(last at {last}, every {interval} blocks)")
    return RunRequest(run_key=slot.key, tags=slot_tags(slot))

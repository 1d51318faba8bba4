"""Stage ``chain_weights``: the day's weights in the chain's form, recorded, and submitted when asked.

The weights are the leaderboard's (``core/scoring/aggregate.miner_weights`` over the day's overall
scores and the 15-day look-back); their chain form is ``core/chain_weights.chain_weights``. What
is recorded is exactly what a submission sends.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from gaia_dagster.core.chain_weights import ChainWeights, WeightRules, chain_weights
from gaia_dagster.core.scoring.aggregate import LOOKBACK_DAYS, miner_weights
from gaia_dagster.db.repository import RunRecord, ValidatorRepository
from gaia_dagster.resources.chain import SubnetChain
from gaia_dagster.resources.registry import MinerRegistry, current_uids


class WeightsNotReady(RuntimeError):
    """The day's leaderboard is not built yet: ``miner_scores`` must run first."""


def day_weights(repo: ValidatorRepository, run: RunRecord) -> dict[str, float]:
    """Each miner's weight for the day (GAIA_SPEC 5): ``miner_weights`` of the run's overall scores
    (written by ``miner_scores``) with the runs of the 14 days before it."""
    latest = {}
    for response in repo.responses(run_id=run.id):
        overall = repo.total_score(response.id, "overall")
        if overall is None:
            raise WeightsNotReady(f"run {run.gfs_init_time:%Y-%m-%d}: miner {response.miner_hotkey} has no overall "
                                  f"score yet; materialize miner_scores for this date first")
        latest[response.miner_hotkey] = overall
    return miner_weights(latest, repo.overall_scores_before(run.gfs_init_time, LOOKBACK_DAYS - 1))


@dataclass(frozen=True)
class WeightsOutcome:
    weights: ChainWeights
    rules_source: str          # "chain" | "defaults (no chain configured)"
    submitted: dict[str, Any] | None


def set_day_weights(repo: ValidatorRepository, run: RunRecord, registry: MinerRegistry, chain: SubnetChain,
                    signer: Any = None) -> WeightsOutcome:
    """The day's weights by the UIDs held now, shaped by the subnet's rules (read from the chain
    when one is configured, else the chain's defaults: no limit, no minimum), and submitted when
    the chain is set to ``submit`` (dry-run otherwise: nothing leaves the validator)."""
    weights = day_weights(repo, run)
    rules = chain.weight_rules() if chain.configured else WeightRules(netuid=chain.subnet())
    plan = chain_weights(weights, current_uids(registry, chain), rules)
    submitted = chain.submit(plan, signer) if chain.submits() else None
    return WeightsOutcome(plan, "chain" if chain.configured else "defaults (no chain configured)", submitted)

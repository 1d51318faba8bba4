"""Stage ``chain_weights``: the weights of one slot of the chain's cadence, recorded, and submitted
when asked.

The profile (``GAIA_SCORING_PROFILE``) decides the rule: ``deployed`` is Gaia v2.9.96's weight path
(``core/weights_deployed``) over Gaia's per-run score rows (``core/weights_run_row``), so the vector
is the one every other Gaia validator submits; ``sound`` is the leaderboard's 15-day weights in the
chain's form (``core/chain_weights``). Whatever the profile, what is recorded is exactly what a
submission sends, and every slot's record stays (``db/weights.py``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit

from gaia_dagster.core.chain_weights import WeightRules, chain_weights
from gaia_dagster.core.scoring.aggregate import LOOKBACK_DAYS, miner_weights, overall_score
from gaia_dagster.core.states import ERA5_SCORED_STATUSES, WeightStatus
from gaia_dagster.core.weights_cadence import simulated_block
from gaia_dagster.core.weights_deployed import VERSION_KEY, WINDOW, Node, deployed_weights
from gaia_dagster.core.weights_input import weight_inputs
from gaia_dagster.core.weights_run_row import RunMinerScore, run_score_row
from gaia_dagster.db.repository import RunRecord, ValidatorRepository
from gaia_dagster.db.weights import ResponseScores, record_weights, runs_scored_since
from gaia_dagster.resources.chain import ChainError, SubnetChain
from gaia_dagster.resources.registry import MinerRegistry, current_uids


class WeightsNotReady(RuntimeError):
    """The day's leaderboard is not built yet: ``miner_scores`` must run first."""


class WeightSubmissionFailed(RuntimeError):
    """The chain refused the slot's weights or could not be reached; the vector is recorded."""


def day_weights(repo: ValidatorRepository, run: RunRecord) -> dict[str, float]:
    """Each miner's leaderboard weight for the day (GAIA_SPEC 5): ``miner_weights`` of the run's
    overall scores (written by ``miner_scores``) with the runs of the 14 days before it."""
    latest = {}
    totals = repo.total_scores(run.id, "overall")
    for response in repo.responses(run_id=run.id):
        overall = totals.get(response.id)
        if overall is None:
            raise WeightsNotReady(f"run {run.gfs_init_time:%Y-%m-%d}: miner {response.miner_hotkey} has no overall "
                                  f"score yet; materialize miner_scores for this date first")
        latest[response.miner_hotkey] = overall
    return miner_weights(latest, repo.overall_scores_before(run.gfs_init_time, LOOKBACK_DAYS - 1))


@dataclass(frozen=True)
class SlotWeights:
    """What one slot sets: ``uids``/``u16`` as the chain receives them, the float ``vector`` handed
    to the call (by UID; None when nothing is set, and ``reason`` says why), the rules, and rows
    describing each UID for people."""

    profile: str
    block: int
    rules: WeightRules
    uids: list[int]
    u16: list[int]
    vector: list[float] | None
    reason: str = ""
    rows: list[dict[str, Any]] = field(default_factory=list)
    details: dict[str, Any] = field(default_factory=dict)

    def call(self) -> dict[str, Any]:
        """The exact call: the SDK's ``SetWeights`` intent with its netuid, dests, u16 weights and
        version key, and the path it takes (a plain ``set_weights``, or a timelocked commit)."""
        return {"intent": "SetWeights", "path": "commit-reveal (timelocked)" if self.rules.commit_reveal else "set_weights",
                "netuid": self.rules.netuid, "dests": self.uids, "weights": self.u16,
                "version_key": self.rules.version_key}


def chain_view(registry: MinerRegistry, chain: SubnetChain, now: datetime) -> tuple[int, list[Node]]:
    """The block and the registered UIDs as Gaia's node table holds them: the metagraph when a chain
    is configured; else the registry file's UIDs (IP from the URL, no validators) at the block a
    chain of 12-second blocks would be at."""
    if chain.configured:
        block, neurons = chain.metagraph()
        return block, [Node(n.uid, n.hotkey, n.ip, None, None, n.stake, n.validator_permit, n.last_update)
                       for n in neurons]
    return simulated_block(now), [Node(e.uid, e.hotkey, urlsplit(e.base_url).hostname or "")
                                  for e in registry.entries() if e.uid is not None]


def _overall(response: ResponseScores) -> float | None:
    """A job's overall score once ERA5 has scored it (so far or fully), else None."""
    if response.status in ERA5_SCORED_STATUSES and response.era5 is not None:
        return overall_score(response.era5, response.day1 or 0.0)
    return None


def gaia_score_rows(repo: ValidatorRepository, uid_of: dict[str, int], now: datetime) -> list:
    """Gaia's score row of every run of the last 15 days, under the UIDs held now."""
    return [run_score_row(run.run_id, run.gfs_init_time,
                          [RunMinerScore(uid_of[r.hotkey], r.day1, _overall(r)) for r in run.responses
                           if r.hotkey in uid_of])
            for run in runs_scored_since(repo, now - WINDOW)]


def weights_input_document(repo: ValidatorRepository, registry: MinerRegistry, chain: SubnetChain,
                           now: datetime) -> dict[str, Any]:
    """What the deployed path reads at ``now``, as a ``gaia-dagster weights --input`` document: the
    DB's runs as Gaia's score rows, the metagraph, the block and Gaia's weight settings."""
    block, nodes = chain_view(registry, chain, now)
    rows = gaia_score_rows(repo, {n.hotkey: n.uid for n in nodes}, now)
    return {"now": now.isoformat(), "block": block,
            "rows": [{"task_id": r.task_id, "created_at": r.created_at.isoformat(), "score": list(r.score)} for r in rows],
            "nodes": [{"uid": n.uid, "hotkey": n.hotkey, "coldkey": n.coldkey, "ip": n.ip, "port": n.port,
                       "stake": n.stake, "validator_permit": n.validator_permit, "last_update": n.last_update}
                      for n in nodes],
            "env": chain.weight_env()}


def deployed_slot(repo: ValidatorRepository, registry: MinerRegistry, chain: SubnetChain, rules: WeightRules,
                  now: datetime) -> SlotWeights:
    """The ``deployed`` profile: Gaia's weight path on the document ``gaia-dagster weights`` would
    read (``weights_input_document``), parsed and computed exactly as that command does."""
    inputs = weight_inputs(weights_input_document(repo, registry, chain, now))
    result = deployed_weights(inputs.rows, inputs.nodes, inputs.now, inputs.block, inputs.env)
    hotkey_of = {n.uid: n.hotkey for n in inputs.nodes}
    vector = result.weights
    table = [{"uid": uid, "hotkey": hotkey_of.get(uid, ""), "weight": vector[uid], "u16": value,
              "mean_score": result.mean_scores[uid] if result.mean_scores else None,
              "share": value / (sum(result.u16) or 1)}
             for uid, value in zip(result.uids, result.u16)] if vector is not None else []
    reason = result.reason or ("" if result.uids else
                               "every weight is 0 after Gaia's path (no score in the 15-day window, and its fallback "
                               "UID 252 is not registered); Gaia would send set_weights with no UIDs, this records it")
    return SlotWeights("deployed", inputs.block, rules, result.uids, result.u16, vector, reason, table,
                       {"rows_used": result.rows_used, "burn_uid": result.burn_uid,
                        "zeroed_validators": result.zeroed_validators, "zeroed_no_ip": result.zeroed_no_ip})


def sound_slot(repo: ValidatorRepository, registry: MinerRegistry, chain: SubnetChain, rules: WeightRules,
               now: datetime) -> SlotWeights:
    """The ``sound`` profile: the latest leaderboard's 15-day weights in the chain's form."""
    if chain.configured and registry.uses_chain():   # one metagraph read gives the block and the UIDs
        block, neurons = chain.metagraph()
        uid_of = {n.hotkey: n.uid for n in neurons}
    else:
        block = chain.metagraph()[0] if chain.configured else simulated_block(now)
        uid_of = current_uids(registry, chain)
    runs = [r for r in repo.all_runs() if r.gfs_init_time <= now]
    latest = next((r for r in sorted(runs, key=lambda r: r.gfs_init_time, reverse=True)
                   if _has_leaderboard(repo, r)), None)
    if latest is None:
        return SlotWeights("sound", block, rules, [], [], None, "no leaderboard yet: no run has overall scores")
    plan = chain_weights(day_weights(repo, latest), uid_of, rules)
    vector = [0.0] * 256
    total = sum(plan.values) or 1
    for uid, value in zip(plan.uids, plan.values):
        if uid < 256:
            vector[uid] = value / total
    return SlotWeights("sound", block, rules, list(plan.uids), list(plan.values),
                       vector if plan.submittable else None, "; ".join(plan.problems), plan.rows(),
                       {"leaderboard_of": f"{latest.gfs_init_time:%Y-%m-%d}", "without_uid": list(plan.unassigned)})


def _has_leaderboard(repo: ValidatorRepository, run: RunRecord) -> bool:
    responses = repo.responses(run_id=run.id)
    return bool(responses) and all(repo.total_score(r.id, "overall") is not None for r in responses)


def slot_weights(repo: ValidatorRepository, registry: MinerRegistry, chain: SubnetChain, profile: str,
                 now: datetime) -> SlotWeights:
    """This slot's weights under ``profile``, with the subnet's rules (the chain's when configured,
    else its defaults) and, for ``deployed`` unless ``GAIA_WEIGHTS_VERSION_KEY`` says otherwise,
    Gaia's version key."""
    rules = chain.weight_rules() if chain.configured else WeightRules(netuid=chain.subnet())
    if profile == "deployed":
        key = int(chain.version_key) if str(chain.version_key).strip() else VERSION_KEY
        rules = WeightRules(rules.netuid, rules.max_weight_limit, rules.min_allowed_weights, rules.commit_reveal, key,
                            rules.rate_limit)
        return deployed_slot(repo, registry, chain, rules, now)
    return sound_slot(repo, registry, chain, rules, now)


def set_slot_weights(repo: ValidatorRepository, slot_key: str, weights: SlotWeights, chain: SubnetChain,
                     signer: Any = None) -> tuple[str, dict[str, Any] | None]:
    """Record the slot's weights and, with ``GAIA_WEIGHTS=submit``, send them. Returns the status
    and the chain's answer; a refused or failed submission is recorded as failed (vector kept)
    and raised as ``WeightSubmissionFailed``, to be tried again at the next slot."""
    mode = "submit" if chain.submits() else "dry-run"
    record = lambda status, error=None: record_weights(  # noqa: E731
        repo, slot_key, weights.block, weights.profile, mode, status, weights.call(), weights.vector, error)
    if weights.vector is None or not weights.uids:
        record(WeightStatus.NOTHING.value, weights.reason or "no positive weight")
        return WeightStatus.NOTHING.value, None
    if mode == "dry-run":
        record(WeightStatus.RECORDED.value)
        return WeightStatus.RECORDED.value, None
    try:
        answer = chain.submit_values(weights.uids, weights.u16, weights.rules, signer)
    except ChainError as exc:
        record(WeightStatus.FAILED.value, str(exc))
        raise WeightSubmissionFailed(f"slot {slot_key}: {exc}; the vector is recorded and the next slot "
                                     f"tries again") from exc
    record(WeightStatus.SUBMITTED.value)
    return WeightStatus.SUBMITTED.value, answer

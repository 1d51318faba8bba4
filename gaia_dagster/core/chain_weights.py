"""The chain's form of the validator's weights (GAIA_SPEC 5, last bullet; the subtensor weight rules).

The leaderboard gives each miner hotkey a weight (``core/scoring/aggregate.miner_weights``). The
chain takes weights by UID as unsigned 16-bit integers, and checks that no single weight is more
than ``max_weight_limit / 65535`` of their sum. This module turns the one into the other, and is
the one place those rules live: the dry-run record and the submission are the same numbers.

Rules, in order:

1. A weight goes to the UID its hotkey holds now. A hotkey that holds no UID (deregistered, or its
   UID taken by a new hotkey) gets nothing: its weight must not flow to the new holder.
2. Zero weights are dropped; weights must be finite and non-negative.
3. When the subnet limits the largest weight, weights above a cutoff are lowered to it so that the
   largest is exactly the limit's share of the total (the excess is spread over the rest in
   proportion, never discarded).
4. u16 quantisation: the largest weight becomes 65535, every other one ``round(w / max * 65535)``;
   values that round to 0 are dropped.
5. Rounding may push the largest share a hair over the limit: the value furthest below its exact
   figure is raised by 1, one at a time, until ``max * 65535 <= limit * sum`` holds exactly.

The result is ordered by UID and depends only on its inputs (not on mapping order).
"""

from __future__ import annotations

import heapq
import math
from dataclasses import dataclass, field
from typing import Mapping, Sequence

U16_MAX = 65535


@dataclass(frozen=True)
class WeightRules:
    """The subnet's hyperparameters that shape a weight submission.

    ``max_weight_limit`` is the chain's u16 form: the largest weight may be at most
    ``max_weight_limit / 65535`` of the total (65535: no limit). ``version_key`` is what the
    submission carries (the chain refuses one below the subnet's ``WeightsVersionKey``);
    ``rate_limit`` the blocks the chain requires between two submissions of one validator."""

    netuid: int
    max_weight_limit: int = U16_MAX
    min_allowed_weights: int = 0
    commit_reveal: bool = False
    version_key: int = 0
    rate_limit: int = 0


@dataclass(frozen=True)
class ChainWeights:
    """What the validator submits for one day: parallel ``uids`` and u16 ``values`` (by UID), the
    hotkey and leaderboard weight behind each, the hotkeys left out for holding no UID, and every
    reason it cannot be submitted (``problems``; empty when it can)."""

    rules: WeightRules
    uids: tuple[int, ...]
    values: tuple[int, ...]
    hotkeys: tuple[str, ...]
    weights: tuple[float, ...]
    unassigned: tuple[str, ...] = ()
    problems: tuple[str, ...] = field(default=())

    @property
    def submittable(self) -> bool:
        return not self.problems

    def largest_share(self) -> float:
        """The largest value's share of the total (what the chain compares with the limit)."""
        total = sum(self.values)
        return max(self.values) / total if total else 0.0

    def rows(self) -> list[dict]:
        """One row per UID submitted: uid, hotkey, leaderboard weight, u16 value, share of total."""
        total = sum(self.values) or 1
        return [{"uid": uid, "hotkey": hotkey, "weight": weight, "u16": value, "share": value / total}
                for uid, hotkey, weight, value in zip(self.uids, self.hotkeys, self.weights, self.values)]


def weights_by_uid(weights: Mapping[str, float], uid_of: Mapping[str, int]) -> tuple[dict[int, tuple[str, float]], list[str]]:
    """Rule 1: each hotkey's weight on the UID it holds now; hotkeys with a positive weight and
    no UID are returned apart (sorted). Two hotkeys claiming one UID is a broken metagraph and
    raises, naming both."""
    by_uid: dict[int, tuple[str, float]] = {}
    unassigned = []
    for hotkey in sorted(weights):
        weight = float(weights[hotkey])
        if not math.isfinite(weight) or weight < 0:
            raise ValueError(f"miner {hotkey}: weight {weights[hotkey]!r} is not a finite non-negative number")
        uid = uid_of.get(hotkey)
        if uid is None:
            if weight > 0:
                unassigned.append(hotkey)
            continue
        if not 0 <= int(uid) <= U16_MAX:
            raise ValueError(f"miner {hotkey}: UID {uid} is outside 0..65535")
        if int(uid) in by_uid:
            raise ValueError(f"UID {uid} is held by both {by_uid[int(uid)][0]} and {hotkey}")
        by_uid[int(uid)] = (hotkey, weight)
    return by_uid, unassigned


def clip_to_limit(weights: Sequence[float], limit: float) -> list[float]:
    """Rule 3: weights normalised to sum 1 with none above ``limit`` (a share in (0, 1]).

    Water-filling: the k largest are lowered to a cutoff c with c = limit * (sum of the others +
    k * c), the smallest k for which every other weight is at most c. When ``n * limit <= 1`` no
    distribution satisfies the limit and the uniform one (closest to it) is returned."""
    n, total = len(weights), float(sum(weights))
    if n == 0 or total <= 0:
        raise ValueError("no positive weight to clip")
    if n * limit <= 1:
        return [1.0 / n] * n
    ordered = sorted(weights, reverse=True)
    rest = [0.0] * (n + 1)  # rest[k]: sum of all but the k largest, summed from the smallest up
    for k in range(n - 1, -1, -1):
        rest[k] = rest[k + 1] + ordered[k]
    cutoff = ordered[-1]
    for k in range(n):
        if limit * k >= 1:  # cannot happen while n * limit > 1 and every weight is positive
            break
        cutoff = limit * rest[k] / (1 - limit * k)
        if ordered[k] <= cutoff:
            break
    clipped = [min(float(w), cutoff) for w in weights]
    clipped_total = sum(clipped)
    return [w / clipped_total for w in clipped]


def within_limit(values: Sequence[int], max_weight_limit: int) -> bool:
    """The chain's check, exactly: the largest value over the total is at most limit / 65535."""
    return max_weight_limit >= U16_MAX or len(values) <= 1 or max(values) * U16_MAX <= max_weight_limit * sum(values)


def quantize_u16(shares: Sequence[float], max_weight_limit: int = U16_MAX) -> list[int]:
    """Rules 4 and 5: u16 values parallel to ``shares`` (0 where a share rounds to nothing), the
    largest 65535, then the value furthest below its exact figure raised by 1 until ``within_limit``."""
    top = max(shares)
    exact = [s / top * U16_MAX for s in shares]
    values = [int(round(x)) for x in exact]
    # max-heap on how far each value sits below its exact figure (ties: lowest index first)
    raisable = [(v - x, i) for i, (x, v) in enumerate(zip(exact, values)) if 0 < v < U16_MAX]
    heapq.heapify(raisable)
    while raisable and not within_limit([v for v in values if v], max_weight_limit):
        _, i = heapq.heappop(raisable)
        values[i] += 1
        if values[i] < U16_MAX:
            heapq.heappush(raisable, (values[i] - exact[i], i))
    return values


def chain_weights(weights: Mapping[str, float], uid_of: Mapping[str, int], rules: WeightRules) -> ChainWeights:
    """The day's submission (rules 1-5): by UID, u16, within the subnet's max-weight limit, with
    every reason it cannot go to the chain (nothing to set, fewer weights than the subnet's
    minimum, a limit no distribution over these UIDs can meet)."""
    by_uid, unassigned = weights_by_uid(weights, uid_of)
    positive = sorted((uid, hk, w) for uid, (hk, w) in by_uid.items() if w > 0)
    if not positive:
        return ChainWeights(rules, (), (), (), (), tuple(unassigned), ("every weight is zero: nothing to set",))
    raw = [w for _, _, w in positive]
    limit = rules.max_weight_limit / U16_MAX
    shares = clip_to_limit(raw, limit) if rules.max_weight_limit < U16_MAX and len(raw) > 1 else raw
    values = quantize_u16(shares, rules.max_weight_limit)
    kept = [(uid, hk, w, v) for (uid, hk, w), v in zip(positive, values) if v > 0]
    problems = []
    if not within_limit([v for *_, v in kept], rules.max_weight_limit):
        problems.append(f"no weights over {len(kept)} UIDs can keep the largest within the subnet's "
                        f"max_weight_limit {rules.max_weight_limit}/65535")
    if len(kept) < rules.min_allowed_weights:
        problems.append(f"subnet {rules.netuid} needs at least {rules.min_allowed_weights} non-zero weights, "
                        f"this day has {len(kept)}")
    return ChainWeights(rules, tuple(k[0] for k in kept), tuple(k[3] for k in kept), tuple(k[1] for k in kept),
                        tuple(k[2] for k in kept), tuple(unassigned), tuple(problems))

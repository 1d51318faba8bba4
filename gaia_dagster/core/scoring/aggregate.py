"""Overall score and weights (GAIA_SPEC section 5, last bullets)."""

from __future__ import annotations

from typing import Mapping, Sequence

DAY1_GATE = 0.1
TOP_BONUS = 0.05
TOP_BONUS_MIN_SCORE = 0.7
LOOKBACK_DAYS = 15


def overall_score(era5: float, day1: float) -> float:
    """Overall = clamp(0.95 * ERA5 + 0.05 * [Day1 >= 0.1], 0, 1)."""
    return min(1.0, max(0.0, 0.95 * era5 + 0.05 * (1.0 if day1 >= DAY1_GATE else 0.0)))


def with_top_bonus(latest: Mapping[str, float]) -> dict[str, float]:
    """Latest overall score per miner, plus 0.05 to the best miner scoring >= 0.7 (split on ties)."""
    scores = dict(latest)
    if not scores:
        return scores
    best = max(scores.values())
    if best >= TOP_BONUS_MIN_SCORE:
        winners = [k for k, v in scores.items() if v == best]
        for k in winners:
            scores[k] += TOP_BONUS / len(winners)
    return scores


def miner_weights(daily: Sequence[Mapping[str, float]], lookback_days: int = LOOKBACK_DAYS) -> dict[str, float]:
    """On-chain weights: each day's scores with the top bonus, averaged over the last
    ``lookback_days`` days (a day a miner has no score counts 0), normalised to sum 1."""
    window = [with_top_bonus(day) for day in list(daily)[-lookback_days:]]
    miners = sorted({k for day in window for k in day})
    if not window:
        return {}
    mean = {k: sum(day.get(k, 0.0) for day in window) / len(window) for k in miners}
    total = sum(mean.values())
    return {k: (v / total if total > 0 else 0.0) for k, v in mean.items()}

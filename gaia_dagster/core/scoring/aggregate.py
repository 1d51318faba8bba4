"""Overall score and miner weights (GAIA_SPEC section 5, last bullets)."""

from __future__ import annotations

from typing import Mapping, Sequence

DAY1_GATE = 0.1
ERA5_SHARE = 0.95
DAY1_SHARE = 0.05
TOP_BONUS = 0.05
TOP_BONUS_MIN_SCORE = 0.7
LOOKBACK_DAYS = 15


def overall_score(era5: float, day1: float) -> float:
    """Overall = clamp(0.95 * ERA5 + 0.05 * [Day1 >= 0.1], 0, 1)."""
    passed_day1 = 1.0 if day1 >= DAY1_GATE else 0.0
    return min(1.0, max(0.0, ERA5_SHARE * era5 + DAY1_SHARE * passed_day1))


def with_top_bonus(latest: Mapping[str, float]) -> dict[str, float]:
    """A day's weights: each miner's latest overall score, plus 0.05 to the best miner when it
    scores >= 0.7 (split equally between miners tied for best)."""
    scores = {miner: float(score) for miner, score in latest.items()}
    if not scores:
        return scores
    best = max(scores.values())
    if best >= TOP_BONUS_MIN_SCORE:
        winners = [miner for miner, score in scores.items() if score == best]
        for miner in winners:
            scores[miner] += TOP_BONUS / len(winners)
    return scores


def miner_weights(latest: Mapping[str, float] | Sequence[Mapping[str, float]],
                  history: Sequence[Mapping[str, float]] = (),
                  lookback_days: int = LOOKBACK_DAYS) -> dict[str, float]:
    """On-chain weights: the mean over the last ``lookback_days`` days of each day's
    ``with_top_bonus`` scores, normalised to sum 1.

    ``history`` holds the earlier days' latest scores (oldest first) and ``latest`` today's; the
    window is the last ``lookback_days`` of history + [latest]. A day on which a miner has no
    score counts 0 for it. Passing only a sequence of days as ``latest`` means that sequence is
    the whole history, today last. Normalising (what the chain does anyway) keeps the weights
    comparable across days; all zero scores give all zero weights.
    """
    days = list(latest) if not isinstance(latest, Mapping) else [*history, latest]
    window = [with_top_bonus(day) for day in days[-lookback_days:]]
    if not window:
        return {}
    miners = sorted({miner for day in window for miner in day})
    mean = {miner: sum(day.get(miner, 0.0) for day in window) / len(window) for miner in miners}
    total = sum(mean.values())
    return {miner: (value / total if total > 0 else 0.0) for miner, value in mean.items()}

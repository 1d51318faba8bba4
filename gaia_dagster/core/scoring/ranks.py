"""Ranks that know their own uncertainty: the 15-day leaderboard with rank intervals and
significance between neighbours (issue 19). These inform people; no weight reads them.

- The days matrix: each miner's overall score per day of the window, 0 on a day it has no score
  (the rule ``aggregate.miner_weights`` uses), so the 15-day mean orders miners as their weights do
  before the top bonus.
- Rank intervals: a circular block bootstrap over days (Politis & Romano's circular blocks, length
  ceil(n^(1/3))): every draw resamples whole blocks of consecutive days, the same days for every
  miner, ranks the miners by their resampled mean, and the interval is the 5th..95th percentile of
  each miner's ranks (90%).
- Neighbours: a paired t-test on the daily differences of two miners with the AR(2) inflation of
  the standard error from Geer (2016), as WeatherBench-X's ``GeerAR2Corrected`` does.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass
from typing import Mapping, Sequence

import numpy as np
from scipy import stats

INTERVAL = 0.9
SIGNIFICANCE = 0.05
DRAWS = 2000
MIN_DAYS = 3          # fewer days say nothing about uncertainty: no interval and no test


def days_matrix(days: Sequence[Mapping[str, float]], miners: Sequence[str]) -> np.ndarray:
    """(miner, day) overall scores, oldest day first; 0 on a day a miner has no score."""
    return np.array([[float(day.get(m, 0.0) or 0.0) for day in days] for m in miners], dtype=np.float64).reshape(
        len(miners), len(days))


def ranks_of(means: np.ndarray) -> np.ndarray:
    """Rank 1 = the highest mean; tied miners share the best rank of their tie ("min" ranking).
    Works along the last axis."""
    return stats.rankdata(-np.asarray(means), method="min", axis=-1).astype(int)


def block_length(n_days: int) -> int:
    """Rule: blocks of ceil(n^(1/3)) days, the usual order for a block bootstrap of a mean."""
    return max(1, math.ceil(n_days ** (1.0 / 3.0) - 1e-9))


def circular_block_draws(n_days: int, block: int, draws: int, rng: np.random.Generator) -> np.ndarray:
    """(draw, n_days) day indices: ceil(n / block) blocks per draw, each ``block`` consecutive days
    from a uniform start, wrapping past the last day to the first, cut to n days."""
    blocks = math.ceil(n_days / block)
    starts = rng.integers(0, n_days, size=(draws, blocks))
    days = (starts[:, :, None] + np.arange(block)[None, None, :]) % n_days
    return days.reshape(draws, blocks * block)[:, :n_days]


def rank_intervals(scores: np.ndarray, draws: int = DRAWS, level: float = INTERVAL, block: int | None = None,
                   seed: int = 0) -> np.ndarray:
    """(miner, 2) lower and upper rank of each miner's ``level`` bootstrap interval over days
    (the ``(1 - level) / 2`` and ``(1 + level) / 2`` quantiles of its ranks, on observed ranks)."""
    n_miners, n_days = scores.shape
    if n_miners == 0 or n_days == 0:
        return np.zeros((n_miners, 2), dtype=int)
    rng = np.random.default_rng(seed)
    index = circular_block_draws(n_days, block or block_length(n_days), draws, rng)
    means = scores[:, index].mean(axis=-1).T                    # (draw, miner)
    ranks = ranks_of(means)
    tail = (1.0 - level) / 2.0
    low = np.quantile(ranks, tail, axis=0, method="inverted_cdf")
    high = np.quantile(ranks, 1.0 - tail, axis=0, method="inverted_cdf")
    return np.stack([low, high], axis=1).astype(int)


def geer_inflation(rho1: float, rho2: float) -> float:
    """Geer (2016)'s inflation k of a mean's standard error under an AR(2) process with lag-1 and
    lag-2 autocorrelations rho1, rho2: phi1 = rho1 (1 - rho2) / (1 - rho1^2), phi2 = (rho2 - rho1^2)
    / (1 - rho1^2), k^2 = (1 - rho1 phi1 - rho2 phi2) / (1 - phi1 - phi2)^2. A fit that is not a
    stationary process (k^2 not finite and positive) gives infinity: no evidence either way."""
    denominator = 1.0 - rho1 * rho1
    if denominator <= 0:
        return math.inf
    phi1 = rho1 * (1.0 - rho2) / denominator
    phi2 = (rho2 - rho1 * rho1) / denominator
    if 1.0 - phi1 - phi2 == 0:
        return math.inf
    k2 = (1.0 - rho1 * phi1 - rho2 * phi2) / (1.0 - phi1 - phi2) ** 2
    return math.sqrt(k2) if math.isfinite(k2) and k2 > 0 else math.inf


def _autocorrelation(deviations: np.ndarray, lag: int, variance: float) -> float:
    """mean(x_t x_{t+lag}) / variance of deviations from the mean; 0 for a constant series."""
    if variance == 0 or len(deviations) <= lag:
        return 0.0
    return float(np.mean(deviations[:-lag] * deviations[lag:]) / variance)


@dataclass(frozen=True)
class PairedTest:
    """A paired test of two miners' daily scores: mean difference (a - b), its AR(2)-inflated
    standard error, and the two-sided p-value of a t-test with n - 1 degrees of freedom."""

    mean_difference: float
    standard_error: float
    p_value: float

    def significant(self, alpha: float = SIGNIFICANCE) -> bool:
        return self.p_value < alpha


def paired_test(a: np.ndarray, b: np.ndarray) -> PairedTest:
    """Rule (WeatherBench-X GeerAR2Corrected): d_t = a_t - b_t; s^2 the sample variance (ddof 1);
    standard error = sqrt(s^2 / n) * k(rho1, rho2); t = mean / standard error. A zero difference
    with zero spread has p = 1; a non-zero one with zero spread p = 0. Fewer than 3 days: p = 1."""
    d = np.asarray(a, dtype=np.float64) - np.asarray(b, dtype=np.float64)
    n = len(d)
    mean = float(d.mean()) if n else 0.0
    if n < 3:
        return PairedTest(mean, math.inf, 1.0)
    deviations = d - mean
    variance = float(np.sum(deviations ** 2) / (n - 1))
    k = geer_inflation(_autocorrelation(deviations, 1, variance), _autocorrelation(deviations, 2, variance))
    stderr = math.sqrt(variance / n) * k if variance > 0 else 0.0
    if stderr == 0:
        return PairedTest(mean, 0.0, 1.0 if mean == 0 else 0.0)
    t = abs(mean) / stderr
    return PairedTest(mean, stderr, float(2.0 * stats.t.sf(t, df=n - 1)))


@dataclass(frozen=True)
class RankedMiner:
    """A miner on the 15-day leaderboard: mean overall score over the window, its rank, the 90%
    rank interval, and the test against the miner ranked just below it (None for the last, and
    interval and test None while the window holds fewer than ``MIN_DAYS`` days)."""

    hotkey: str
    days: int
    mean_score: float
    rank: int
    rank_low: int | None
    rank_high: int | None
    next_hotkey: str | None
    next_p_value: float | None
    next_significant: bool | None

    def as_row(self) -> dict:
        return dict(self.__dict__)


def seed_of(key: str) -> int:
    """A bootstrap seed from a text key (the run's key), so a leaderboard is the same on every rerun."""
    return int.from_bytes(hashlib.sha256(key.encode()).digest()[:8], "big")


def ranked_with_intervals(days: Sequence[Mapping[str, float]], seed_key: str = "",
                          draws: int = DRAWS) -> list[RankedMiner]:
    """The window's miners ranked by mean overall score (ties by hotkey), each with its bootstrap
    rank interval and the paired test against the next one down (both from ``MIN_DAYS`` days on)."""
    miners = sorted({m for day in days for m in day})
    scores = days_matrix(days, miners)
    means = scores.mean(axis=1) if len(days) else np.zeros(len(miners))
    ranks = ranks_of(means) if len(miners) else np.zeros(0, dtype=int)
    intervals = rank_intervals(scores, draws=draws, seed=seed_of(seed_key))
    order = sorted(range(len(miners)), key=lambda i: (-means[i], miners[i]))
    out = []
    known = len(days) >= MIN_DAYS
    for pos, i in enumerate(order):
        below = order[pos + 1] if pos + 1 < len(order) else None
        test = paired_test(scores[i], scores[below]) if below is not None and known else None
        out.append(RankedMiner(miners[i], len(days), float(means[i]), int(ranks[i]),
                               int(intervals[i, 0]) if known else None, int(intervals[i, 1]) if known else None,
                               miners[below] if below is not None else None,
                               test.p_value if test else None, test.significant() if test else None))
    return out

"""The day-1 score (GAIA_SPEC section 4): lead 12 h against the GFS analysis, GFS f012 as reference.

Streaming form: ``score_component`` scores one variable into one row and
``day1_score_from_components`` combines rows; ``score_day1`` does both.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Mapping, Sequence

import numpy as np

from gaia_dagster.core.scoring.metrics import (
    acc_centred, bias_corrected_skill, lat_weights, pattern_correlation, weighted_bias, weighted_mse, weighted_rmse,
)
from gaia_dagster.core.scoring.variables import DEFAULT_DAY1_VARIABLES, parse_variables

# Gaia's default day-1 list as (variable, level) keys (core.scoring.variables holds the list).
DAY1_VARIABLES: tuple[tuple[str, int | None], ...] = tuple(
    (e.variable, e.levels[0]) for e in parse_variables(DEFAULT_DAY1_VARIABLES, single_fields_only=True))
CLONE_THRESHOLDS: dict[tuple[str, int | None], float] = {
    ("2t", None): 0.0025, ("msl", None): 400.0, ("10u", None): 0.01, ("10v", None): 0.01, ("z", 500): 100.0,
}
SANITY_RANGES: dict[tuple[str, int | None], tuple[float, float]] = {
    ("2t", None): (180.0, 340.0), ("msl", None): (90000.0, 110000.0), ("t", 850): (220.0, 320.0),
    ("z", 500): (45000.0, 60000.0),
}
MIN_PATTERN_CORRELATION = 0.3
CLONE_CLAMP = 0.05


@dataclass(frozen=True)
class Day1Field:
    """One variable at the day-1 lead on (lat, lon): miner forecast, GFS analysis (truth), GFS
    forecast (reference) and climatology."""

    forecast: np.ndarray
    truth: np.ndarray
    reference: np.ndarray
    climatology: np.ndarray


@dataclass(frozen=True)
class Day1Component:
    """One scored variable; skill and acc are NaN when it failed sanity (``reason`` says why)."""

    variable: str
    level: int | None
    lead_hours: int
    clone_distance: float
    clone_penalty: float
    skill: float
    acc: float
    rmse: float
    bias: float
    sane: bool
    reason: str | None
    nan_values: bool = False    # the forecast held NaN/Inf values (sound: counts 0 in both means)


@dataclass
class Day1Result:
    """The day-1 score, its per-variable rows, and whether the clone clamp applied."""

    score: float
    components: list[Day1Component] = field(default_factory=list)
    clone_clamped: bool = False
    failure: str | None = None


def field_name(variable: str, level: int | None) -> str:
    """``2t`` for a surface variable, ``z500`` for a variable at a level."""
    return variable if level is None else f"{variable}{level}"


def clone_penalty(distance: float, threshold: float) -> float:
    """p = max(0, 1 - d / D) when d < D, else 0 (d: weighted MSE to the GFS forecast)."""
    return max(0.0, 1.0 - distance / threshold) if distance < threshold else 0.0


def sanity_failure(key: tuple[str, int | None], fld: Day1Field, w: np.ndarray, range_checks: bool = True) -> str | None:
    """Why a variable fails the day-1 sanity checks (range, q >= 0, correlation with GFS), or None."""
    variable, level = key
    name = field_name(variable, level)
    fc = np.asarray(fld.forecast, dtype=np.float64)
    if not np.isfinite(fc).all():
        return f"{name}: forecast has non-finite values"
    if range_checks and key in SANITY_RANGES:
        lo, hi = SANITY_RANGES[key]
        if fc.min() < lo or fc.max() > hi:
            return f"{name}: values {fc.min():.6g}..{fc.max():.6g} outside the sane range [{lo:g}, {hi:g}]"
    if variable == "q" and fc.min() < 0:
        return f"{name}: negative specific humidity ({fc.min():.3g})"
    corr = pattern_correlation(fc, fld.reference, w)
    if not (corr >= MIN_PATTERN_CORRELATION):
        return f"{name}: pattern correlation with the GFS forecast {corr:.3f} < {MIN_PATTERN_CORRELATION}"
    return None


def score_component(key: tuple[str, int | None], fld: Day1Field, w: np.ndarray, lead_hours: int = 12,
                    range_checks: bool = True) -> Day1Component:
    """One variable (GAIA_SPEC 4 steps 1-5): clone distance d = MSE_w(fc, gfs) and penalty p,
    sanity, skill = 1 - MSE_w(fc_bc, truth) / MSE_w(gfs, truth) - p, and the centred ACC."""
    variable, level = key
    distance = weighted_mse(fld.forecast, fld.reference, w)
    threshold = CLONE_THRESHOLDS.get(key)
    penalty = clone_penalty(distance, threshold) if threshold else 0.0
    reason = sanity_failure(key, fld, w, range_checks)
    rmse = weighted_rmse(fld.forecast, fld.truth, w)
    bias = weighted_bias(fld.forecast, fld.truth, w)
    if reason:
        nan_values = not np.isfinite(np.asarray(fld.forecast)).all()
        return Day1Component(variable, level, lead_hours, distance, penalty, math.nan, math.nan, rmse, bias, False,
                             reason, nan_values)
    skill = bias_corrected_skill(fld.forecast, fld.truth, fld.reference, w) - penalty
    acc = acc_centred(fld.forecast, fld.truth, fld.climatology, w)
    return Day1Component(variable, level, lead_hours, distance, penalty, skill, acc, rmse, bias, True, None)


def is_clone(c: Day1Component) -> bool:
    """A variable marks a clone when p > 0 or d < 0.5 * D."""
    threshold = CLONE_THRESHOLDS.get((c.variable, c.level))
    return c.clone_penalty > 0 or (threshold is not None and c.clone_distance < 0.5 * threshold)


def aggregate_day1(components: Sequence[Day1Component], clamp_sane_only: bool = False,
                   nan_counts_worst: bool = False) -> tuple[float, bool]:
    """Day1 = 0.6 * mean(max(0, skill)) + 0.4 * mean((ACC + 1) / 2) over finite values, clamped to
    0.05 when any variable has a clone penalty or a clone distance below half its threshold (with
    ``clamp_sane_only``, the deployed rule, only variables that passed the sanity checks count).
    With ``nan_counts_worst`` (sound) a variable whose forecast holds NaNs counts 0 in both means
    instead of being left out, so NaNs never raise the score."""
    worst = [0.0 for c in components if nan_counts_worst and c.nan_values]
    skills = [max(0.0, c.skill) for c in components if math.isfinite(c.skill)] + worst
    accs = [(c.acc + 1.0) / 2.0 for c in components if math.isfinite(c.acc)] + worst
    score = 0.6 * (float(np.mean(skills)) if skills else 0.0) + 0.4 * (float(np.mean(accs)) if accs else 0.0)
    clamped = any(is_clone(c) for c in components if c.sane or not clamp_sane_only)
    return (min(score, CLONE_CLAMP) if clamped else score), clamped


def day1_score_from_components(components: Sequence[Day1Component], clamp_sane_only: bool = False,
                               nan_counts_worst: bool = False) -> Day1Result:
    """The day-1 result from rows scored one variable at a time (``aggregate_day1``)."""
    score, clamped = aggregate_day1(components, clamp_sane_only, nan_counts_worst)
    return Day1Result(score, list(components), clamped)


def score_day1(inputs: Mapping[tuple[str, int | None], Day1Field], lat: np.ndarray, lead_hours: int = 12,
               weights: str = "cos") -> Day1Result:
    """The day-1 score of one miner from its fields at one lead, keyed (variable, level), e.g.
    ("2t", None), ("z", 500); ``weights`` is ``cos`` (deployed) or ``area`` (WeatherBench2)."""
    w = lat_weights(lat, weights)
    return day1_score_from_components([score_component(key, fld, w, lead_hours) for key, fld in inputs.items()])

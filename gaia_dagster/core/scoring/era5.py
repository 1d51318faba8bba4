"""The ERA5 score (GAIA_SPEC section 5): every variable and level at leads 24..240 h against ERA5.

Streaming form: ``era5_field_metrics`` scores one (lead, variable, level) field into one row and
``era5_score_from_metrics`` turns rows into the score, so a caller never holds the whole forecast.
``score_era5`` does both for fields already in memory.
"""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Callable, Iterable, Mapping, Sequence

import numpy as np

from gaia_dagster.core.contract import ERA5_LEAD_HOURS
from gaia_dagster.core.scoring.metrics import (
    acc_centred, acc_uncentred, bias_corrected_skill, lat_weights, level_weights, weighted_bias, weighted_mse,
)

MIN_VERIFY_COVERAGE = 0.1
MAX_ABS_VALUE = 1e12
MIN_SCORING_COVERAGE = 0.9985
SKILL_SHARE, ACC_SHARE, RMSE_SHARE = 0.6, 0.3, 0.1


@dataclass(frozen=True)
class Era5Field:
    """One (lead, variable, level) on (lat, lon): the miner's forecast, ERA5 and the climatology."""

    forecast: np.ndarray
    truth: np.ndarray
    climatology: np.ndarray


@dataclass(frozen=True)
class Era5Metric:
    """One scored field; ``reference_rmse`` is the climatology's RMSE (the RMSE term's ref)."""

    variable: str
    level: int | None
    lead_hours: int
    rmse: float
    bias: float
    acc: float
    skill: float
    reference_rmse: float


@dataclass
class Era5Result:
    score: float
    lead_scores: dict[int, float] = field(default_factory=dict)
    metrics: list[Era5Metric] = field(default_factory=list)
    failure: str | None = None
    summaries: dict = field(default_factory=dict)   # deployed: lead -> per-entry VariableSummary list


# -- guards -------------------------------------------------------------------------------------
def finite_coverage(values: np.ndarray) -> float:
    """Fraction of finite values (0 for an empty array)."""
    values = np.asarray(values)
    return float(np.isfinite(values).mean()) if values.size else 0.0


def _magnitude_failure(largest: float, variable: str) -> str | None:
    return f"{variable}: values up to {largest:.3g} beyond the {MAX_ABS_VALUE:g} magnitude limit" \
        if largest > MAX_ABS_VALUE else None


def _finite_extremes(values: np.ndarray) -> tuple[float, float] | None:
    """(min, max) of a plane when every value is finite (two passes, no temporaries), else None."""
    if not values.size:
        return None
    low, high = float(values.min()), float(values.max())
    return (low, high) if np.isfinite(low) and np.isfinite(high) else None


def verification_failure(values: np.ndarray, variable: str) -> str | None:
    """Verification guard: finite coverage < 0.1 or any |value| > 1e12 fails the forecast.
    ``variable`` names the field in the reason (e.g. ``2t`` or ``z500``)."""
    values = np.asarray(values)
    extremes = _finite_extremes(values)
    if extremes is not None:                                    # the common case: every value finite
        return _magnitude_failure(max(abs(extremes[0]), abs(extremes[1])), variable)
    coverage = finite_coverage(values)
    if coverage < MIN_VERIFY_COVERAGE:
        return f"{variable}: only {coverage:.1%} of values are finite (NaN/Inf forecast)"
    return _magnitude_failure(float(np.nanmax(np.abs(np.where(np.isfinite(values), values, np.nan)))), variable)


def magnitude_failure(values: np.ndarray, variable: str) -> str | None:
    """The 1e12 magnitude part of the verification guard alone, NaNs allowed (day 1 under
    ``deployed``: Gaia's day 1 has no coverage guard)."""
    values = np.asarray(values)
    finite = np.abs(values[np.isfinite(values)])
    return _magnitude_failure(float(finite.max()) if finite.size else 0.0, variable)


def era5_guards_failure(values: np.ndarray, variable: str) -> str | None:
    """The verification guard, then the ERA5 coverage guard; a wholly finite plane needs one
    min/max pass for both."""
    values = np.asarray(values)
    extremes = _finite_extremes(values)
    if extremes is not None:
        return _magnitude_failure(max(abs(extremes[0]), abs(extremes[1])), variable)
    return verification_failure(values, variable) or era5_coverage_failure(values, variable)


def era5_coverage_failure(values: np.ndarray, variable: str) -> str | None:
    """ERA5 scoring guard: finite coverage < 0.9985 fails ERA5 scoring of the response."""
    coverage = finite_coverage(values)
    if coverage < MIN_SCORING_COVERAGE:
        return f"{variable}: finite coverage {coverage:.4%} below the {MIN_SCORING_COVERAGE:.2%} ERA5 scoring needs"
    return None


def fill_from_climatology(forecast: np.ndarray, climatology: np.ndarray) -> np.ndarray:
    """Remaining non-finite forecast values take the climatology's value (after the guards)."""
    forecast = np.asarray(forecast)
    finite = np.isfinite(forecast)
    return forecast if finite.all() else np.where(finite, forecast, climatology)


# -- one field ------------------------------------------------------------------------------------
def era5_field_metrics(lead_hours: int, variable: str, level: int | None, fld: Era5Field, lat: np.ndarray,
                       weights: str | np.ndarray = "cos", acc: str = "centred") -> Era5Metric:
    """One row: RMSE, bias, ACC (``centred`` = Gaia, ``uncentred`` = WeatherBench2) and skill vs
    climatology 1 - MSE_w(fc_bc, truth) / MSE_w(clim, truth) of one (variable, level, lead), plus
    the climatology RMSE. ``weights`` is ``cos``, ``area`` or a precomputed (lat,) array (pass one
    to avoid recomputing it per field). NaNs left after the guards are filled from climatology.
    """
    w = lat_weights(lat, weights) if isinstance(weights, str) else np.asarray(weights, dtype=np.float64)
    clim = np.asarray(fld.climatology, dtype=np.float64)
    truth = np.asarray(fld.truth, dtype=np.float64)
    fc = np.asarray(fill_from_climatology(fld.forecast, clim), dtype=np.float64)
    acc_of = {"centred": acc_centred, "uncentred": acc_uncentred}[acc]
    return Era5Metric(
        variable=variable, level=level, lead_hours=int(lead_hours),
        rmse=math.sqrt(weighted_mse(fc, truth, w)), bias=weighted_bias(fc, truth, w),
        acc=acc_of(fc, truth, clim, w), skill=bias_corrected_skill(fc, truth, clim, w),
        reference_rmse=math.sqrt(weighted_mse(clim, truth, w)),
    )


# -- per lead and overall -------------------------------------------------------------------------
def skill_term(skill: float) -> float:
    """clamp(skill, 0, 1); NaN (a perfect climatology, no reference error) stays NaN = left out."""
    return min(1.0, max(0.0, skill)) if math.isfinite(skill) else math.nan


def acc_term(acc: float) -> float:
    """(ACC + 1) / 2; a NaN ACC (a flat anomaly, e.g. the climatology as forecast) counts as the
    worst ACC, -1 (term 0), so that a NaN never raises a score above a forecast with a real ACC."""
    return (acc + 1.0) / 2.0 if math.isfinite(acc) else 0.0


def rmse_term(rmse: float, reference_rmse: float) -> float:
    """1 / (1 + RMSE / ref) with ref = the climatology RMSE of the same variable and level.

    The deployed validator uses as ref the median of the miner's own RMSEs across variables, which
    mixes K, Pa, m/s and m2/s2 (so the term mostly measures which units a variable has) and moves
    with the miner's own errors. A per-variable climatology RMSE keeps units apart and gives 0.5
    to a forecast as good as climatology, 1 to a perfect one. NaN when ref is 0 (left out).
    """
    if not (reference_rmse > 0 and math.isfinite(rmse)):
        return math.nan
    return 1.0 / (1.0 + rmse / reference_rmse)


def _weighted_nanmean(values: Sequence[float], weights: Sequence[float]) -> float:
    """Weighted mean of the finite values (weights renormalised over them); NaN if none."""
    pairs = [(v, w) for v, w in zip(values, weights) if math.isfinite(v)]
    total = sum(w for _, w in pairs)
    return sum(v * w for v, w in pairs) / total if total > 0 else math.nan


def variable_terms(rows: Sequence[Era5Metric]) -> tuple[float, float, float]:
    """(skill, ACC, RMSE) terms of one variable at one lead: a surface variable's own terms, a
    pressure-level variable's terms combined across levels with the half-thickness level weights."""
    levels = [m.level for m in rows]
    w = np.ones(len(rows)) / len(rows) if None in levels else level_weights(levels)
    terms = [(skill_term(m.skill), acc_term(m.acc), rmse_term(m.rmse, m.reference_rmse)) for m in rows]
    return tuple(_weighted_nanmean([t[i] for t in terms], w) for i in range(3))  # type: ignore[return-value]


def by_variable(m: Era5Metric) -> str:
    """The default grouping of rows into variables: by variable name, every level together."""
    return m.variable


def lead_score(metrics: Iterable[Era5Metric], group: Callable[[Era5Metric], str] = by_variable) -> float:
    """Per-lead score = 0.6 * mean(clamp(skill, 0, 1)) + 0.3 * mean((ACC + 1) / 2)
    + 0.1 * mean(1 / (1 + RMSE / ref)), clamped to [0, 1]; means over variables (``group``: the
    entries of the variable list) after the level combination, finite terms only (a term with none
    counts 0)."""
    by_variable: dict[str, list[Era5Metric]] = defaultdict(list)
    for m in metrics:
        by_variable[group(m)].append(m)
    per_variable = [variable_terms(rows) for rows in by_variable.values()]
    means = []
    for i in range(3):
        finite = [v[i] for v in per_variable if math.isfinite(v[i])]
        means.append(sum(finite) / len(finite) if finite else 0.0)
    score = SKILL_SHARE * means[0] + ACC_SHARE * means[1] + RMSE_SHARE * means[2]
    return float(min(1.0, max(0.0, score)))


def era5_score_from_metrics(metrics: Sequence[Era5Metric], leads: Sequence[int] = ERA5_LEAD_HOURS,
                            group: Callable[[Era5Metric], str] = by_variable) -> Era5Result:
    """ERA5 score = sum of lead scores / number of required leads (a missing lead counts 0)."""
    by_lead: dict[int, list[Era5Metric]] = defaultdict(list)
    for m in metrics:
        by_lead[m.lead_hours].append(m)
    lead_scores = {lead: lead_score(by_lead[lead], group) for lead in leads if by_lead.get(lead)}
    return Era5Result(sum(lead_scores.values()) / len(leads) if leads else 0.0, lead_scores, list(metrics))


def field_name(variable: str, level: int | None) -> str:
    """``2t`` for a surface variable, ``z500`` for a variable on a level."""
    return variable if level is None else f"{variable}{level}"


def score_era5(inputs: Mapping[tuple[int, str, int | None], Era5Field], lat: np.ndarray,
               leads: Sequence[int] = ERA5_LEAD_HOURS, weights: str = "cos", acc: str = "centred") -> Era5Result:
    """The ERA5 score from every (lead, variable, level) field in memory. A field failing the
    verification or coverage guard fails the whole response: score 0 and ``failure`` says why."""
    for (lead, variable, level), fld in inputs.items():
        name = field_name(variable, level)
        problem = era5_guards_failure(fld.forecast, name)
        if problem:
            return Era5Result(0.0, {}, [], f"{problem} at lead {lead} h")
    w = lat_weights(lat, weights)
    metrics = [era5_field_metrics(lead, variable, level, fld, lat, w, acc)
               for (lead, variable, level), fld in inputs.items()]
    return era5_score_from_metrics(metrics, leads)

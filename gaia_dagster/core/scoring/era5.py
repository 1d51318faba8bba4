"""The ERA5 score (GAIA_SPEC section 5): every variable and level at leads 24..240 h against ERA5."""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Iterable, Mapping, Sequence

import numpy as np

from gaia_dagster.core.contract import ERA5_LEAD_HOURS
from gaia_dagster.core.scoring.metrics import (
    acc_centred, acc_uncentred, bias_corrected_skill, lat_weights, level_weights, weighted_bias, weighted_mse,
)

MIN_VERIFY_COVERAGE = 0.1
MAX_ABS_VALUE = 1e12
MIN_SCORING_COVERAGE = 0.9985


@dataclass(frozen=True)
class Era5Field:
    forecast: np.ndarray
    truth: np.ndarray
    climatology: np.ndarray


@dataclass(frozen=True)
class Era5Metric:
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


def finite_coverage(values: np.ndarray) -> float:
    """Fraction of finite values."""
    values = np.asarray(values)
    return float(np.isfinite(values).mean()) if values.size else 0.0


def verification_failure(values: np.ndarray, name: str) -> str | None:
    """Verification guard: finite coverage < 0.1 or any |value| > 1e12 fails the forecast."""
    coverage = finite_coverage(values)
    if coverage < MIN_VERIFY_COVERAGE:
        return f"{name}: only {coverage:.1%} of values are finite (NaN/Inf forecast)"
    finite = np.asarray(values)[np.isfinite(values)]
    if finite.size and float(np.abs(finite).max()) > MAX_ABS_VALUE:
        return f"{name}: values beyond {MAX_ABS_VALUE:g} in magnitude"
    return None


def era5_coverage_failure(values: np.ndarray, name: str) -> str | None:
    """ERA5 scoring guard: finite coverage < 0.9985 fails ERA5 scoring of the response."""
    coverage = finite_coverage(values)
    if coverage < MIN_SCORING_COVERAGE:
        return f"{name}: finite coverage {coverage:.4%} below {MIN_SCORING_COVERAGE:.2%} needed for ERA5 scoring"
    return None


def fill_from_climatology(forecast: np.ndarray, climatology: np.ndarray) -> np.ndarray:
    """Remaining non-finite forecast values take the climatology's value."""
    forecast = np.asarray(forecast)
    if np.isfinite(forecast).all():
        return forecast
    return np.where(np.isfinite(forecast), forecast, climatology)


def era5_field_metrics(lead_hours: int, variable: str, level: int | None, fld: Era5Field, lat: np.ndarray,
                       weights: str = "cos", acc: str = "centred") -> Era5Metric:
    """RMSE, bias, ACC and skill vs climatology of one (variable, level, lead), plus the climatology
    RMSE that serves as the per-variable reference of the RMSE term."""
    w = lat_weights(lat, weights)
    clim = np.asarray(fld.climatology, dtype=np.float64)
    fc = fill_from_climatology(fld.forecast, clim)
    acc_fn = acc_centred if acc == "centred" else acc_uncentred
    return Era5Metric(
        variable=variable, level=level, lead_hours=lead_hours,
        rmse=math.sqrt(weighted_mse(fc, fld.truth, w)), bias=weighted_bias(fc, fld.truth, w),
        acc=acc_fn(fc, fld.truth, clim, w), skill=bias_corrected_skill(fc, fld.truth, clim, w),
        reference_rmse=math.sqrt(weighted_mse(clim, fld.truth, w)),
    )


def _terms(m: Era5Metric) -> tuple[float, float, float]:
    """The three per-field terms: clamp(skill, 0, 1), (ACC + 1) / 2, 1 / (1 + RMSE / ref)."""
    skill = min(1.0, max(0.0, m.skill)) if math.isfinite(m.skill) else math.nan
    acc = (m.acc + 1.0) / 2.0 if math.isfinite(m.acc) else math.nan
    rmse = 1.0 / (1.0 + m.rmse / m.reference_rmse) if m.reference_rmse > 0 and math.isfinite(m.rmse) else math.nan
    return skill, acc, rmse


def _weighted_nanmean(values: Sequence[float], weights: Sequence[float]) -> float:
    pairs = [(v, w) for v, w in zip(values, weights) if math.isfinite(v)]
    total = sum(w for _, w in pairs)
    return sum(v * w for v, w in pairs) / total if total > 0 else math.nan


def lead_score(metrics: Iterable[Era5Metric]) -> float:
    """Per-lead score = 0.6 * mean(clamp(skill, 0, 1)) + 0.3 * mean((ACC + 1) / 2)
    + 0.1 * mean(1 / (1 + RMSE / ref)), clamped to [0, 1].

    Pressure-level variables are first combined across levels with the half-thickness level
    weights, then every term is averaged over variables (finite values only). ``ref`` is the
    climatology RMSE of the same variable and level: unlike the deployed reference (the median
    of the miner's own RMSEs across variables, which mixes K, Pa and m2/s2), it keeps units apart
    and rewards beating climatology.
    """
    by_variable: dict[str, list[Era5Metric]] = defaultdict(list)
    for m in metrics:
        by_variable[m.variable].append(m)
    per_variable = []
    for rows in by_variable.values():
        levels = [m.level for m in rows]
        w = level_weights(levels) if None not in levels else np.ones(len(rows)) / len(rows)
        terms = [_terms(m) for m in rows]
        per_variable.append(tuple(_weighted_nanmean([t[i] for t in terms], w) for i in range(3)))
    means = [np.nanmean([v[i] for v in per_variable]) if any(math.isfinite(v[i]) for v in per_variable) else 0.0
             for i in range(3)]
    return float(min(1.0, max(0.0, 0.6 * means[0] + 0.3 * means[1] + 0.1 * means[2])))


def era5_score_from_metrics(metrics: Sequence[Era5Metric], leads: Sequence[int] = ERA5_LEAD_HOURS) -> Era5Result:
    """ERA5 score = sum of lead scores / number of required leads (a missing lead counts 0)."""
    by_lead: dict[int, list[Era5Metric]] = defaultdict(list)
    for m in metrics:
        by_lead[m.lead_hours].append(m)
    lead_scores = {lead: lead_score(by_lead[lead]) for lead in leads if by_lead.get(lead)}
    return Era5Result(sum(lead_scores.values()) / len(leads), lead_scores, list(metrics))


def score_era5(inputs: Mapping[tuple[int, str, int | None], Era5Field], lat: np.ndarray,
               leads: Sequence[int] = ERA5_LEAD_HOURS, weights: str = "cos", acc: str = "centred") -> Era5Result:
    """The ERA5 score from every (lead, variable, level) field; guards fail the whole response."""
    for (lead, variable, level), fld in inputs.items():
        name = variable if level is None else f"{variable}{level}"
        problem = verification_failure(fld.forecast, name) or era5_coverage_failure(fld.forecast, name)
        if problem:
            return Era5Result(0.0, {}, [], f"{problem} at lead {lead} h")
    metrics = [era5_field_metrics(lead, variable, level, fld, lat, weights, acc)
               for (lead, variable, level), fld in inputs.items()]
    return era5_score_from_metrics(metrics, leads)

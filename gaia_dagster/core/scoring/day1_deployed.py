"""One day-1 variable as the deployed validator (Gaia v2.9.96) scores it.

Every mean skips cells where either operand is NaN (their weight too): the clone distance
d = MSE_w(fc, gfs), the pattern correlation with GFS, the skill's MSEs and the ACC. No range
checks (the deployed step passes no bounds); a ``q`` variable must not go negative; the pattern
correlation must be >= 0.3 (NaN fails). Bias correction subtracts the unweighted mean of fc - truth.
skill = 1 - MSE_w(fc_bc, truth) / MSE_w(gfs, truth) - p (a perfect GFS: 1 if fc is perfect too,
else -inf); ACC = weighted Pearson correlation of the anomalies, NaN when either anomaly's
unweighted standard deviation is below 1e-12.
"""

from __future__ import annotations

import numpy as np

from gaia_dagster.core.scoring.day1 import (
    CLONE_THRESHOLDS, MIN_PATTERN_CORRELATION, Day1Component, Day1Field, clone_penalty, field_name,
)

ACC_MIN_STD = 1e-12


def _pair(a: np.ndarray, b: np.ndarray, w: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Flattened a, b and weights where both are finite."""
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    w2 = np.broadcast_to(np.asarray(w, dtype=np.float64)[:, None], a.shape)
    ok = np.isfinite(a) & np.isfinite(b)
    return a[ok], b[ok], w2[ok]


def nan_mse(a: np.ndarray, b: np.ndarray, w: np.ndarray) -> float:
    """Weighted MSE over the cells where both fields are finite."""
    a, b, w = _pair(a, b, w)
    return float(np.sum(w * (a - b) ** 2) / np.sum(w)) if w.size else float("nan")


def nan_pearson(a: np.ndarray, b: np.ndarray, w: np.ndarray) -> float:
    """Weighted Pearson correlation over the cells where both fields are finite."""
    a, b, w = _pair(a, b, w)
    if not w.size:
        return float("nan")
    w = w / np.sum(w)
    am, bm = a - np.sum(w * a), b - np.sum(w * b)
    den = np.sqrt(np.sum(w * am * am) * np.sum(w * bm * bm))
    return float(np.sum(w * am * bm) / den) if den > 0 else float("nan")


def _skill(fc_bc: np.ndarray, truth: np.ndarray, reference: np.ndarray, w: np.ndarray) -> float:
    mse_f, mse_r = nan_mse(fc_bc, truth, w), nan_mse(reference, truth, w)
    if mse_r == 0:
        return 1.0 if mse_f == 0 else -np.inf
    return 1.0 - mse_f / mse_r


def _acc(fc: np.ndarray, truth: np.ndarray, clim: np.ndarray, w: np.ndarray) -> float:
    fa, oa = np.asarray(fc, dtype=np.float64) - clim, np.asarray(truth, dtype=np.float64) - clim
    if np.std(fa) < ACC_MIN_STD or np.std(oa) < ACC_MIN_STD:   # NaN std never trips the guard
        return float("nan")
    return nan_pearson(fa, oa, w)


def deployed_sanity_failure(variable: str, level: int | None, fc: np.ndarray, reference: np.ndarray,
                            w: np.ndarray) -> str | None:
    """Why a variable fails the deployed day-1 sanity checks (q >= 0, correlation with GFS), or None."""
    name = field_name(variable, level)
    lowest = float(fc[np.isfinite(fc)].min()) if np.isfinite(fc).any() else float("nan")
    if variable.startswith("q") and lowest < 0:
        return f"{name}: negative specific humidity ({lowest:.3g})"
    corr = nan_pearson(fc, reference, w)
    if not (corr >= MIN_PATTERN_CORRELATION):
        return f"{name}: pattern correlation with the GFS forecast {corr:.3f} < {MIN_PATTERN_CORRELATION}"
    return None


def score_component_deployed(key: tuple[str, int | None], fld: Day1Field, w: np.ndarray,
                             lead_hours: int = 12) -> Day1Component:
    """One day-1 variable under the deployed rules (module doc); bias = unweighted mean error."""
    variable, level = key
    fc = np.asarray(fld.forecast, dtype=np.float64)
    truth = np.asarray(fld.truth, dtype=np.float64)
    distance = nan_mse(fc, fld.reference, w)
    threshold = CLONE_THRESHOLDS.get(key)
    penalty = clone_penalty(distance, threshold) if threshold else 0.0
    error = fc - truth
    finite = np.isfinite(error)
    bias = float(error[finite].mean()) if finite.any() else float("nan")   # NaN-skipping mean
    rmse = float(np.sqrt(nan_mse(fc, truth, w)))
    reason = deployed_sanity_failure(variable, level, fc, fld.reference, w)
    if reason:
        return Day1Component(variable, level, lead_hours, distance, penalty, np.nan, np.nan, rmse, bias, False, reason)
    skill = _skill(fc - bias, truth, fld.reference, w) - penalty
    acc = _acc(fc, truth, fld.climatology, w)
    return Day1Component(variable, level, lead_hours, distance, penalty, skill, acc, rmse, bias, True, None)

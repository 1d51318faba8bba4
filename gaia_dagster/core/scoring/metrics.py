"""Weighted verification metrics on a regular lat/lon grid, accumulated in float64.

Weights ``w`` are per latitude, shape (lat,), normalised to mean 1 over the latitudes, and
broadcast over longitude; every "weighted mean" below is sum(w * x) / sum(w) over the grid.
"""

from __future__ import annotations

import numpy as np


def cos_lat_weights(lat: np.ndarray) -> np.ndarray:
    """Gaia's latitude weights (GAIA_SPEC 4): w = cos(lat) / mean(cos(lat)), clipped at 0 at the poles."""
    w = np.clip(np.cos(np.deg2rad(np.asarray(lat, dtype=np.float64))), 0.0, None)
    return w / w.mean()


def area_lat_weights(lat: np.ndarray) -> np.ndarray:
    """WeatherBench2 cell-area weights: bounds at midpoints between latitudes capped at +-90 deg,
    w = sin(upper) - sin(lower), divided by the mean."""
    lat = np.asarray(lat, dtype=np.float64)
    mid = (lat[:-1] + lat[1:]) / 2.0
    edges = np.concatenate([[lat[0] + (lat[0] - mid[0])], mid, [lat[-1] + (lat[-1] - mid[-1])]])
    edges = np.clip(edges, -90.0, 90.0)
    w = np.abs(np.sin(np.deg2rad(edges[:-1])) - np.sin(np.deg2rad(edges[1:])))
    return w / w.mean()


def lat_weights(lat: np.ndarray, kind: str = "cos") -> np.ndarray:
    """Latitude weights by name: ``cos`` (Gaia, the default) or ``area`` (WeatherBench2)."""
    if kind == "cos":
        return cos_lat_weights(lat)
    if kind == "area":
        return area_lat_weights(lat)
    raise ValueError(f"unknown latitude weights {kind!r} (expected 'cos' or 'area')")


def level_weights(levels) -> np.ndarray:  # noqa: ANN001
    """Pressure-level weights proportional to each level's half-thickness in hPa, summing to 1.

    A level's thickness reaches halfway to each neighbour; the outermost levels reach only to
    their one neighbour's midpoint (half-thickness of the layer the level represents). For the 13
    contract levels the column spans 50..1000 hPa: 50 hPa weighs 25/950, 1000 hPa 37.5/950.
    A single level weighs 1.
    """
    p = np.asarray(levels, dtype=np.float64)
    if p.size == 1:
        return np.ones(1)
    order = np.argsort(p)
    sp = p[order]
    mid = (sp[:-1] + sp[1:]) / 2.0
    upper = np.concatenate([[sp[0]], mid])
    lower = np.concatenate([mid, [sp[-1]]])
    thickness = np.empty_like(p)
    thickness[order] = lower - upper
    return thickness / thickness.sum()


def weighted_mean(x: np.ndarray, w: np.ndarray) -> float:
    """<x> = sum(w * x) / sum(w) over a (lat, lon) field with w per latitude, in float64."""
    x = np.asarray(x, dtype=np.float64)
    return float((x.mean(axis=-1) * w).sum() / w.sum())


def weighted_mse(f: np.ndarray, o: np.ndarray, w: np.ndarray) -> float:
    """MSE = weighted mean of (F - O)^2."""
    d = np.asarray(f, dtype=np.float64) - np.asarray(o, dtype=np.float64)
    return weighted_mean(d * d, w)


def weighted_rmse(f: np.ndarray, o: np.ndarray, w: np.ndarray) -> float:
    """RMSE = sqrt(MSE) of one field (time-mean MSE first when averaging over times)."""
    return float(np.sqrt(weighted_mse(f, o, w)))


def weighted_bias(f: np.ndarray, o: np.ndarray, w: np.ndarray) -> float:
    """Bias = weighted mean of F - O."""
    return weighted_mean(np.asarray(f, dtype=np.float64) - np.asarray(o, dtype=np.float64), w)


def acc_centred(f: np.ndarray, o: np.ndarray, c: np.ndarray, w: np.ndarray) -> float:
    """Gaia's ACC: weighted Pearson correlation of the anomalies F' = F - C and O' = O - C
    (each anomaly centred on its weighted mean). NaN when either anomaly has zero variance."""
    fa = np.asarray(f, dtype=np.float64) - c
    oa = np.asarray(o, dtype=np.float64) - c
    fa = fa - weighted_mean(fa, w)
    oa = oa - weighted_mean(oa, w)
    return _correlation(fa, oa, w)


def acc_uncentred(f: np.ndarray, o: np.ndarray, c: np.ndarray, w: np.ndarray) -> float:
    """WeatherBench2's ACC: <F'O'> / sqrt(<F'^2><O'^2>) with F' = F - C, O' = O - C, uncentred."""
    fa = np.asarray(f, dtype=np.float64) - c
    oa = np.asarray(o, dtype=np.float64) - c
    return _correlation(fa, oa, w)


def _correlation(a: np.ndarray, b: np.ndarray, w: np.ndarray) -> float:
    """<ab> / sqrt(<a^2><b^2>) with weighted means; NaN when a denominator is 0."""
    denom = np.sqrt(weighted_mean(a * a, w) * weighted_mean(b * b, w))
    if not np.isfinite(denom) or denom == 0.0:
        return float("nan")
    return float(weighted_mean(a * b, w) / denom)


def pattern_correlation(f: np.ndarray, r: np.ndarray, w: np.ndarray) -> float:
    """Weighted Pearson correlation of two full fields (the day-1 sanity check against GFS)."""
    fa = np.asarray(f, dtype=np.float64)
    ra = np.asarray(r, dtype=np.float64)
    return _correlation(fa - weighted_mean(fa, w), ra - weighted_mean(ra, w), w)


def bias_corrected_skill(f: np.ndarray, o: np.ndarray, ref: np.ndarray, w: np.ndarray) -> float:
    """skill = 1 - MSE_w(F - mean(F - O), O) / MSE_w(ref, O); the bias uses the UNWEIGHTED spatial
    mean, as deployed. NaN when the reference is perfect (MSE_w(ref, O) = 0)."""
    f64 = np.asarray(f, dtype=np.float64)
    o64 = np.asarray(o, dtype=np.float64)
    corrected = f64 - float(np.mean(f64 - o64))
    ref_mse = weighted_mse(ref, o64, w)
    if ref_mse == 0.0:
        return float("nan")
    return 1.0 - weighted_mse(corrected, o64, w) / ref_mse

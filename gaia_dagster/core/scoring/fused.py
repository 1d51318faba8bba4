"""One fused pass per field: forecast F, truth O and climatology C read from memory once.

With D = F - O and the truth anomaly O' = O - C, the pass accumulates in float64

    S1 = <D>_w,  S2 = <D^2>_w,  S3 = <D O'>_w,  M = <O'>_w,  P = <O'^2>_w,  U = mean(D) (unweighted)

(and the unweighted sums of D^2, D O', O', O'^2 for the degeneracy guard), from which, exactly
(F' = F - C = D + O'):

    MSE   = S2                          RMSE = sqrt(S2)          bias = S1
    skill = 1 - (S2 - 2 U S1 + U^2) / P    (bias correction by the unweighted mean U)
    <F'>_w = S1 + M,  <F'^2>_w = S2 + 2 S3 + P,  <F'O'>_w = S3 + P
    ACC uncentred = <F'O'> / sqrt(<F'^2> P);  centred: the same with the means removed.

An anomaly whose unweighted standard deviation is below 1e-12 (a forecast equal to the climatology)
leaves the ACC undefined (NaN), as in Gaia's degeneracy guard. The sums above cannot resolve so
small a spread, so a field whose sums cancel to within 1e-9 of their size is checked directly.

The pass walks blocks of rows that fit in cache: each block is widened to float64 once and every
sum is taken while it is hot.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

BLOCK_ROWS = 16
FLAT_ANOMALY_STD = 1e-12     # Gaia's ACC degeneracy guard (np.std of an anomaly below it: NaN ACC)
CANCELLATION = 1e-9          # unweighted variance sums cancelling beyond this are checked directly


def _blocks(n_rows: int):  # noqa: ANN202
    return (slice(i, min(i + BLOCK_ROWS, n_rows)) for i in range(0, n_rows, BLOCK_ROWS))


@dataclass(frozen=True)
class FusedMetrics:
    rmse: float
    bias: float
    skill: float
    acc_centred: float
    acc_uncentred: float
    reference_rmse: float
    mean_error: float = math.nan   # U: the unweighted mean of F - O (the deployed surface bias)


def fused_metrics(forecast: np.ndarray, truth: np.ndarray, climatology: np.ndarray,
                  lat_weights: np.ndarray, row_sums: np.ndarray | None = None) -> FusedMetrics:
    """RMSE, bias, bias-corrected skill vs climatology and both ACCs of one field in one pass.

    Non-finite forecast values take the climatology's value first (the ERA5 NaN-fill rule). A
    ``row_sums`` array (5, lat) receives each row's plain sums of D, D^2, D O', O', O'^2 as the pass
    takes them (the regional scorecard's latitude bands reuse them); the metrics never depend on it."""
    f, o, c = np.asarray(forecast), np.asarray(truth), np.asarray(climatology)
    if not (np.isfinite(f.min()) and np.isfinite(f.max())):
        f = np.where(np.isfinite(f), f, c)
    row = np.asarray(lat_weights, dtype=np.float64) / (float(np.sum(lat_weights)) * o.shape[-1])
    weighted, totals = np.zeros(5), np.zeros(5)   # weighted and plain sums of D, D^2, D O', O', O'^2
    ones = np.ones(f.shape[-1])
    block = np.empty((5, BLOCK_ROWS))
    for blk in _blocks(f.shape[0]):
        o64 = o[blk].astype(np.float64)
        d = f[blk] - o64
        oa = o64 - c[blk]
        sums = block[:, :o64.shape[0]]
        np.dot(d, ones, out=sums[0])
        np.einsum("ij,ij->i", d, d, out=sums[1])
        np.einsum("ij,ij->i", d, oa, out=sums[2])
        np.dot(oa, ones, out=sums[3])
        np.einsum("ij,ij->i", oa, oa, out=sums[4])
        weighted += sums @ row[blk]
        totals += sums.sum(axis=-1)
        if row_sums is not None:
            row_sums[:, blk] = sums
    s1, s2, s3, mean, power = (float(x) for x in weighted)
    u = float(totals[0]) / f.size
    flat = (_flat(o, c, totals[3], totals[4])
            or _flat(f, c, totals[0] + totals[3], totals[1] + 2.0 * totals[2] + totals[4], totals[1] + totals[4]))
    skill = 1.0 - (s2 - 2.0 * u * s1 + u * u) / power if power > 0 else math.nan
    fo = s3 + power                     # <F'O'>
    ff = s2 + 2.0 * s3 + power          # <F'^2>
    fm = s1 + mean                      # <F'>
    return FusedMetrics(
        rmse=math.sqrt(max(s2, 0.0)), bias=s1, skill=skill,
        acc_centred=math.nan if flat else _ratio(fo - fm * mean, ff - fm * fm, power - mean * mean),
        acc_uncentred=math.nan if flat else _ratio(fo, ff, power),
        reference_rmse=math.sqrt(max(power, 0.0)), mean_error=u,
    )


def _ratio(cross: float, var_f: float, var_o: float) -> float:
    """cross / sqrt(var_f * var_o), NaN when a variance vanishes."""
    denom = var_f * var_o
    return float(cross / math.sqrt(denom)) if denom > 0 else math.nan


def _flat(values: np.ndarray, climatology: np.ndarray, total: float, squares: float,
          size: float | None = None) -> bool:
    """Rule: an anomaly X - C is flat when np.std(X - C) < 1e-12. Its variance from the unweighted
    sums (squares / n - (total / n)^2) decides unless the sums cancel to within ``CANCELLATION`` of
    their ``size`` (default squares / n); then the spread is taken directly from X - C."""
    n = values.size
    variance = squares / n - (total / n) ** 2
    if variance > CANCELLATION * (squares / n if size is None else size):
        return False
    return float(np.std(np.asarray(values, dtype=np.float64) - climatology)) < FLAT_ANOMALY_STD

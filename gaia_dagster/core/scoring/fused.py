"""One fused pass per forecast field, with what depends only on the reference computed once.

For a (valid time, variable, level) the truth O, the climatology C, their anomaly O' = O - C and
its weighted moments depend on no miner: ``ReferenceField`` holds them, shared by every miner of
the run. A miner's field F then needs only four float64 accumulations over D = F - O:

    S1 = <D>_w,   S2 = <D^2>_w,   S3 = <D O'>_w,   U = mean(D) (unweighted)

from which, exactly (F' = F - C = D + O'):

    MSE   = S2                          RMSE = sqrt(S2)          bias = S1
    skill = 1 - (S2 - 2 U S1 + U^2) / <O'^2>_w    (bias correction by the unweighted mean U)
    <F'>_w = S1 + <O'>_w,  <F'^2>_w = S2 + 2 S3 + <O'^2>_w,  <F'O'>_w = S3 + <O'^2>_w
    ACC uncentred = <F'O'> / sqrt(<F'^2><O'^2>);  centred: the same with the means removed.

The pass walks blocks of rows that fit in cache: each block is widened to float64 once and every
sum is taken while it is hot, so the field is read from memory once.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

BLOCK_ROWS = 32


def _blocks(n_rows: int):  # noqa: ANN202
    return (slice(i, min(i + BLOCK_ROWS, n_rows)) for i in range(0, n_rows, BLOCK_ROWS))


@dataclass(frozen=True)
class ReferenceField:
    """Truth-side quantities of one field, computed once per run and shared by every miner."""

    truth: np.ndarray          # as stored (float32 is exact in float64)
    climatology: np.ndarray
    row_weights: np.ndarray    # w(lat) / (sum(w) * nlon): a weighted mean is a dot with row sums
    mean_anomaly: float        # <O'>_w
    anomaly_power: float       # <O'^2>_w = MSE_w(C, O)

    @classmethod
    def build(cls, truth: np.ndarray, climatology: np.ndarray, lat_weights: np.ndarray) -> "ReferenceField":
        o, c = np.asarray(truth), np.asarray(climatology)
        row = np.asarray(lat_weights, dtype=np.float64) / (float(np.sum(lat_weights)) * o.shape[-1])
        mean = power = 0.0
        for blk in _blocks(o.shape[0]):
            oa = o[blk].astype(np.float64) - c[blk]
            mean += float(row[blk] @ oa.sum(axis=-1))
            power += float(row[blk] @ np.einsum("ij,ij->i", oa, oa))
        return cls(o, c, row, mean, power)


@dataclass(frozen=True)
class FusedMetrics:
    rmse: float
    bias: float
    skill: float
    acc_centred: float
    acc_uncentred: float
    reference_rmse: float
    mean_error: float = math.nan   # U: the unweighted mean of F - O (the deployed surface bias)


def fused_metrics(forecast: np.ndarray, ref: ReferenceField) -> FusedMetrics:
    """RMSE, bias, bias-corrected skill vs climatology and both ACCs of one field in one pass.

    Non-finite forecast values take the climatology's value first (the ERA5 NaN-fill rule)."""
    f = np.asarray(forecast)
    if not (np.isfinite(f.min()) and np.isfinite(f.max())):
        f = np.where(np.isfinite(f), f, ref.climatology)
    s1 = s2 = s3 = total = 0.0
    for blk in _blocks(f.shape[0]):
        o = ref.truth[blk].astype(np.float64)
        d = f[blk] - o
        oa = o - ref.climatology[blk]
        w = ref.row_weights[blk]
        rows = d.sum(axis=-1)
        total += float(rows.sum())
        s1 += float(w @ rows)
        s2 += float(w @ np.einsum("ij,ij->i", d, d))
        s3 += float(w @ np.einsum("ij,ij->i", d, oa))
    u = total / f.size
    power = ref.anomaly_power
    skill = 1.0 - (s2 - 2.0 * u * s1 + u * u) / power if power > 0 else math.nan
    fo = s3 + power                     # <F'O'>
    ff = s2 + 2.0 * s3 + power          # <F'^2>
    fm = s1 + ref.mean_anomaly          # <F'>
    om = ref.mean_anomaly               # <O'>
    return FusedMetrics(
        rmse=math.sqrt(max(s2, 0.0)), bias=s1, skill=skill,
        acc_centred=_ratio(fo - fm * om, ff - fm * fm, power - om * om),
        acc_uncentred=_ratio(fo, ff, power),
        reference_rmse=math.sqrt(max(power, 0.0)), mean_error=u,
    )


def _ratio(cross: float, var_f: float, var_o: float) -> float:
    """cross / sqrt(var_f * var_o), NaN when a variance vanishes."""
    denom = var_f * var_o
    return cross / math.sqrt(denom) if denom > 0 else math.nan

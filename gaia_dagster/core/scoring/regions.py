"""Regional scorecards: every scored field's RMSE, bias, ACC and skill over WeatherBench2's regions.

Regions are WeatherBench2's ``SliceRegion`` boxes (``scripts/evaluate.py``, predefined regions):
latitudes in [lat_min, lat_max] and longitudes in any of ``lon_ranges`` (0..360), both ends
included, as xarray's label slices include them. A region's weighted mean of x is
sum(w_lat * x) / sum(w_lat) over its cells, with the score's own latitude weights.

The scorecard reads nothing: it is handed the planes the ERA5 (or day-1) score already holds, on
the truth grid, and takes in one pass over each block of rows the plain and per-column-segment
sums of D = F - O, D^2, D O', O', O'^2 (and, with a GFS reference R, (R - O)^2), where O' = O - C.
Longitudes are cut into segments no region boundary crosses, so every region's sum is a sum of
whole segments (one matrix product per block).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from gaia_dagster.core.scoring.fused import _ratio

BLOCK_ROWS = 32


@dataclass(frozen=True)
class Region:
    """A WeatherBench2 SliceRegion: lat in [lat_min, lat_max], lon in any of ``lon_ranges``."""

    name: str
    lat_min: float = -90.0
    lat_max: float = 90.0
    lon_ranges: tuple[tuple[float, float], ...] = ((0.0, 360.0),)

    def rows(self, lat: np.ndarray) -> np.ndarray:
        """The latitude rows inside the region (boolean per row)."""
        lat = np.asarray(lat, dtype=np.float64)
        return (lat >= self.lat_min) & (lat <= self.lat_max)

    def columns(self, lon: np.ndarray) -> np.ndarray:
        """The longitude columns inside the region (boolean per column), longitudes taken mod 360."""
        lon = np.mod(np.asarray(lon, dtype=np.float64), 360.0)
        return np.any([(lon >= lo) & (lon <= hi) for lo, hi in self.lon_ranges], axis=0)


# WeatherBench2's predefined regions (evaluate.py); extra-tropics is its two hemispheric bands.
WB2_REGIONS: tuple[Region, ...] = (
    Region("global"),
    Region("tropics", -20.0, 20.0),
    Region("northern-extra-tropics", 20.0, 90.0),
    Region("southern-extra-tropics", -90.0, -20.0),
    Region("europe", 35.0, 75.0, ((347.5, 360.0), (0.0, 42.5))),
    Region("north-america", 25.0, 60.0, ((240.0, 285.0),)),
    Region("east-asia", 25.0, 60.0, ((102.5, 150.0),)),
    Region("ausnz", -45.0, -12.5, ((120.0, 175.0),)),
)


@dataclass(frozen=True)
class RegionalMetric:
    """One (region, lead, variable, level) of a scorecard. ``skill`` is WeatherBench2's MSE skill
    score against climatology, 1 - MSE / MSE_clim (no bias correction); ``skill_gfs`` the same
    against the GFS forecast where the validator holds one (None elsewhere)."""

    region: str
    lead_hours: int
    variable: str
    level: int | None
    rmse: float
    bias: float
    acc: float
    skill: float
    reference_rmse: float
    skill_gfs: float | None = None
    gfs_rmse: float | None = None

    def as_row(self) -> dict:
        return {**self.__dict__, "level": self.level or 0}


def column_segments(lon: np.ndarray, regions: tuple[Region, ...]) -> tuple[np.ndarray, np.ndarray]:
    """Rule: longitudes grouped by which regions hold them. Returns the (lon, segment) 0/1 matrix
    and the (segment, region) 0/1 matrix saying which segments make up each region's columns."""
    member = np.stack([r.columns(lon) for r in regions], axis=1)          # (lon, region)
    signatures, segment_of = np.unique(member, axis=0, return_inverse=True)
    to_segment = np.zeros((len(lon), len(signatures)))
    to_segment[np.arange(len(lon)), segment_of.ravel()] = 1.0
    return to_segment, signatures.astype(np.float64)


@dataclass
class Scorecard:
    """Collects the regional rows of every field it is given, on one truth grid; ``acc`` is the
    ACC the score uses (``centred``: Gaia's weighted Pearson; ``uncentred``: WeatherBench2's)."""

    lat: np.ndarray
    lon: np.ndarray
    weights: np.ndarray
    regions: tuple[Region, ...] = WB2_REGIONS
    acc: str = "centred"
    rows: list[RegionalMetric] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._to_segment, self._of_region = column_segments(self.lon, self.regions)
        in_rows = np.stack([r.rows(self.lat) for r in self.regions], axis=1).astype(np.float64)   # (lat, region)
        self._row_weight = np.asarray(self.weights, dtype=np.float64)[:, None] * in_rows          # (lat, region)
        columns = self._to_segment.sum(axis=0) @ self._of_region                                   # per region
        self._total = self._row_weight.sum(axis=0) * columns

    def add(self, lead_hours: int, variable: str, level: int | None, forecast: np.ndarray, truth: np.ndarray,
            climatology: np.ndarray, reference: np.ndarray | None = None) -> None:
        """Score one field over every region that holds a cell of the grid (non-finite forecast
        values take the climatology's, the ERA5 fill rule)."""
        sums = regional_sums(forecast, truth, climatology, reference, self._to_segment, self._of_region,
                             self._row_weight)
        for i, region in enumerate(self.regions):
            if self._total[i] > 0:
                self.rows.append(regional_metric(region.name, lead_hours, variable, level,
                                                 sums[:, i] / self._total[i], self.acc))


def regional_sums(forecast: np.ndarray, truth: np.ndarray, climatology: np.ndarray, reference: np.ndarray | None,
                  to_segment: np.ndarray, of_region: np.ndarray, row_weight: np.ndarray) -> np.ndarray:
    """Per region, the latitude-weighted sums of D, D^2, D O', O', O'^2 and (with ``reference``)
    (R - O)^2, in float64: shape (5 or 6, region)."""
    f, o, c = np.asarray(forecast), np.asarray(truth), np.asarray(climatology)
    if not (np.isfinite(f.min()) and np.isfinite(f.max())):
        f = np.where(np.isfinite(f), f, c)
    k = 5 if reference is None else 6
    out = np.zeros((k, row_weight.shape[1]))
    for start in range(0, f.shape[0], BLOCK_ROWS):
        blk = slice(start, min(start + BLOCK_ROWS, f.shape[0]))
        o64 = o[blk].astype(np.float64)
        d = f[blk] - o64
        oa = o64 - c[blk]
        terms = [d, d * d, d * oa, oa, oa * oa]
        if reference is not None:
            g = reference[blk] - o64
            terms.append(g * g)
        per_region = (np.stack(terms) @ to_segment) @ of_region        # (k, rows, region)
        out += np.einsum("krg,rg->kg", per_region, row_weight[blk])
    return out


def regional_metric(region: str, lead_hours: int, variable: str, level: int | None, means: np.ndarray,
                    acc: str = "centred") -> RegionalMetric:
    """The metrics of a region from its weighted means <D>, <D^2>, <D O'>, <O'>, <O'^2> (and <G^2>,
    G = R - O): RMSE = sqrt<D^2>, bias = <D>, skill = 1 - <D^2> / <O'^2>, ACC from
    <F'O'> = <D O'> + <O'^2> and <F'^2> = <D^2> + 2<D O'> + <O'^2> (centred: covariances)."""
    s1, s2, s3, mean, power = (float(x) for x in means[:5])
    fo, ff, fm = s3 + power, s2 + 2.0 * s3 + power, s1 + mean
    if acc == "centred":
        correlation = _ratio(fo - fm * mean, ff - fm * fm, power - mean * mean)
    else:
        correlation = _ratio(fo, ff, power)
    gfs = float(means[5]) if len(means) > 5 else None
    return RegionalMetric(
        region, lead_hours, variable, level, rmse=math.sqrt(max(s2, 0.0)), bias=s1, acc=correlation,
        skill=1.0 - s2 / power if power > 0 else math.nan, reference_rmse=math.sqrt(max(power, 0.0)),
        skill_gfs=None if gfs is None else (1.0 - s2 / gfs if gfs > 0 else math.nan),
        gfs_rmse=None if gfs is None else math.sqrt(max(gfs, 0.0)),
    )

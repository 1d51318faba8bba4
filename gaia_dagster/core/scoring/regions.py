"""Regional scorecards: every scored field's RMSE, bias, ACC and skill over WeatherBench2's regions.

Regions are WeatherBench2's ``SliceRegion`` boxes (``scripts/evaluate.py``, predefined regions):
latitudes in [lat_min, lat_max] and longitudes in any of ``lon_ranges`` (0..360), both ends
included, as xarray's label slices include them. A region's weighted mean of x is
sum(w_lat * x) / sum(w_lat) over its cells, with the score's own latitude weights.

The scorecard reads nothing: it is handed the planes the ERA5 (or day-1) score already holds, on
the truth grid. From the row sums of D = F - O, D^2, D O', O', O'^2 (O' = O - C; with a GFS
reference R also (R - O)^2) every metric follows. A latitude band (global, tropics, extra-tropics)
takes them from the ERA5 pass itself (``fused_metrics`` hands its row sums over), so it costs no
pass of its own; a box (Europe, North America, ...) sums its own cells, about a tenth of the globe.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from gaia_dagster.core.scoring.fused import _ratio


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
        w = np.asarray(self.weights, dtype=np.float64)
        self._plan = []   # (name, box, latitude weights of its rows, total weight) of each region with a cell
        for region in self.regions:
            box, row_weight = box_of(region, self.lat, self.lon), w * region.rows(self.lat)
            total = float(row_weight.sum()) * (len(self.lon) if box is None else sum(s.stop - s.start for s in box[1]))
            if total > 0:
                self._plan.append((region.name, box, row_weight if box is None else row_weight[box[0]], total))

    def add(self, lead_hours: int, variable: str, level: int | None, forecast: np.ndarray, truth: np.ndarray,
            climatology: np.ndarray, reference: np.ndarray | None = None, row_sums: np.ndarray | None = None) -> None:
        """Score one field over every region that holds a cell of the grid. A latitude band sums
        whole rows: ``row_sums`` when the ERA5 pass took them (``fused_metrics``), else its own;
        a box sums its own cells only. Non-finite forecast values take the climatology's."""
        planes = [None if a is None else np.asarray(a) for a in (forecast, truth, climatology, reference)]
        if row_sums is None:
            row_sums = plane_row_sums(*planes)
        for name, box, row_weight, total in self._plan:
            if box is None:
                sums = row_sums @ row_weight
            else:
                rows, spans = box
                sums = sum(plane_row_sums(*(None if a is None else a[rows, span] for a in planes))
                           for span in spans) @ row_weight
            self.rows.append(regional_metric(name, lead_hours, variable, level, sums / total, self.acc))


def box_of(region: Region, lat: np.ndarray, lon: np.ndarray) -> tuple[slice, list[slice]] | None:
    """A region that is not a whole latitude band, as the slice of its rows (latitudes are
    monotonic, so they are contiguous) and the slices of its runs of columns (views, no copy);
    None for a band."""
    columns = region.columns(lon)
    if columns.all():
        return None
    return _runs(region.rows(lat))[0] if region.rows(lat).any() else slice(0, 0), _runs(columns)


def _runs(held: np.ndarray) -> list[slice]:
    """The maximal runs of True in a boolean vector, as slices."""
    edges = np.flatnonzero(np.diff(np.concatenate([[0], held.astype(np.int8), [0]])))
    return [slice(int(a), int(b)) for a, b in zip(edges[::2], edges[1::2])]


def plane_row_sums(forecast: np.ndarray, truth: np.ndarray, climatology: np.ndarray,
                   reference: np.ndarray | None = None) -> np.ndarray:
    """Each row's plain sums of D, D^2, D O', O', O'^2 and (with ``reference`` R) (R - O)^2, in
    float64, shape (5 or 6, rows); non-finite forecast values take the climatology's first."""
    f, o64 = np.asarray(forecast), np.asarray(truth, dtype=np.float64)
    c = np.asarray(climatology)
    if f.size and not (np.isfinite(f.min()) and np.isfinite(f.max())):
        f = np.where(np.isfinite(f), f, c)
    d = f - o64
    oa = o64 - c
    sums = np.empty((5 if reference is None else 6, o64.shape[0]))
    np.add.reduce(d, axis=-1, out=sums[0])
    _dot(d, d, sums[1])
    _dot(d, oa, sums[2])
    np.add.reduce(oa, axis=-1, out=sums[3])
    _dot(oa, oa, sums[4])
    if reference is not None:
        g = np.asarray(reference) - o64
        _dot(g, g, sums[5])
    return sums


def _dot(a: np.ndarray, b: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    """Row sums of a * b without the product's temporary (into ``out`` when given)."""
    return np.einsum("ij,ij->i", a, b, out=out)


def regional_metric(region: str, lead_hours: int, variable: str, level: int | None, means: np.ndarray,
                    acc: str = "centred") -> RegionalMetric:
    """The metrics of a region from its weighted means <D>, <D^2>, <D O'>, <O'>, <O'^2> (and <G^2>,
    G = R - O): RMSE = sqrt<D^2>, bias = <D>, skill = 1 - <D^2> / <O'^2>, ACC from
    <F'O'> = <D O'> + <O'^2> and <F'^2> = <D^2> + 2<D O'> + <O'^2> (centred: covariances)."""
    s1, s2, s3, mean, power = np.asarray(means[:5], dtype=np.float64).tolist()
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

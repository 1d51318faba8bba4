"""Regridding a forecast plane onto the truth grid (GAIA_SPEC 3: "forecasts on a different grid are
regridded (linear) onto the truth grid").

The rule, as the deployed validator applies it: separable linear interpolation, first along
latitude then along longitude, each source axis sorted ascending (so a 720-row forecast, or one
with ascending latitudes, lands on the 721-row descending truth grid). On each axis a target point
``x`` between source points ``x[k-1] <= x <= x[k]`` takes ``y[k-1] + (y[k] - y[k-1]) / (x[k] -
x[k-1]) * (x - x[k-1])`` (``k >= 1``), so a NaN source value reaches the target points of both
intervals it bounds: on the same grid a NaN cell also blanks its next neighbour along each axis,
as Gaia's interpolation does. Target points outside the source range are NaN (``outside="nan"``,
deployed: the south-pole row of a 720-row forecast) or take the nearest edge value
(``outside="edge"``, the sound profile's choice).

Deployed edge salvage (``salvage_edges``, Gaia's ``era5_edge_salvage_enabled``, on by default): after
the interpolation and before the ERA5 coverage guard, a NaN in the plane's one-cell border takes its
inward neighbour, so a 720-row forecast's missing pole row is filled from the next row.
"""

from __future__ import annotations

import numpy as np

OUTSIDE = ("nan", "edge")


def same_axis(a: np.ndarray, b: np.ndarray) -> bool:
    """True when two coordinate axes are the same points in the same order."""
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    return a.shape == b.shape and bool(np.allclose(a, b, atol=1e-6))


def same_grid(src_lat: np.ndarray, src_lon: np.ndarray, dst_lat: np.ndarray, dst_lon: np.ndarray) -> bool:
    """True when a forecast's grid is the truth grid (both axes, see ``same_axis``)."""
    return same_axis(src_lat, dst_lat) and same_axis(src_lon, dst_lon)


def needs_regrid(values: np.ndarray, src_lat: np.ndarray, src_lon: np.ndarray, dst_lat: np.ndarray,
                 dst_lon: np.ndarray, spread_nans: bool, on_grid: bool | None = None) -> bool:
    """Whether a plane must go through ``regrid_linear``: its grid differs from the truth's, or it
    holds NaNs that the deployed interpolation would spread (``spread_nans``). ``on_grid``: whether
    the grids are the same, when the caller already knows (``same_grid``)."""
    if not (same_grid(src_lat, src_lon, dst_lat, dst_lon) if on_grid is None else on_grid):
        return True
    if not spread_nans:
        return False
    values = np.asarray(values)
    return not (np.isfinite(values.min()) and np.isfinite(values.max()))


def _interp_axis(y: np.ndarray, x: np.ndarray, x_new: np.ndarray, axis: int, outside: str) -> np.ndarray:
    """Linear interpolation of ``y`` along ``axis`` from sorted ascending ``x`` to ``x_new``."""
    from scipy.interpolate import interp1d

    if outside == "edge":
        fill = (y.take(0, axis=axis), y.take(-1, axis=axis))
        f = interp1d(x, y, kind="linear", axis=axis, bounds_error=False, fill_value=np.nan, assume_sorted=True)
        out = f(x_new)
        below, above = x_new < x[0], x_new > x[-1]
        if below.any() or above.any():
            out = np.moveaxis(out, axis, 0)
            out[below] = np.moveaxis(np.expand_dims(fill[0], axis), axis, 0)
            out[above] = np.moveaxis(np.expand_dims(fill[1], axis), axis, 0)
            out = np.moveaxis(out, 0, axis)
        return out
    f = interp1d(x, y, kind="linear", axis=axis, bounds_error=False, fill_value=(np.nan, np.nan), assume_sorted=True)
    return f(x_new)


def regrid_linear(values: np.ndarray, src_lat: np.ndarray, src_lon: np.ndarray, dst_lat: np.ndarray,
                  dst_lon: np.ndarray, outside: str = "nan") -> np.ndarray:
    """A (lat, lon) plane on the destination grid, in float64 (see the module doc for the rule)."""
    if outside not in OUTSIDE:
        raise ValueError(f"unknown outside rule {outside!r} (expected one of {OUTSIDE})")
    y = np.asarray(values, dtype=np.float64)
    lat, lon = np.asarray(src_lat, dtype=np.float64), np.asarray(src_lon, dtype=np.float64)
    if y.shape != (lat.size, lon.size):
        raise ValueError(f"plane of shape {y.shape} does not match its grid ({lat.size}, {lon.size})")
    order_lat, order_lon = np.argsort(lat, kind="stable"), np.argsort(lon, kind="stable")
    y = y[order_lat][:, order_lon]
    y = _interp_axis(y, lat[order_lat], np.asarray(dst_lat, dtype=np.float64), 0, outside)
    return _interp_axis(y, lon[order_lon], np.asarray(dst_lon, dtype=np.float64), 1, outside)


def salvage_edges(values: np.ndarray) -> np.ndarray:
    """Gaia's edge salvage of a plane on the truth grid: NaN cells of the top row take the row below,
    of the bottom row the row above, of the first column the second, of the last column the one
    before, each read from the plane before any fill and applied in that order (a corner ends with
    its row neighbour, NaN when that one is NaN too). A plane without border NaN is returned as is."""
    arr = np.asarray(values)
    if not any(np.isnan(edge).any() for edge in (arr[0], arr[-1], arr[:, 0], arr[:, -1])):
        return arr
    nan = np.isnan(arr)
    filled = arr.copy()
    for edge, inner in (((0, slice(None)), (1, slice(None))), ((-1, slice(None)), (-2, slice(None))),
                        ((slice(None), 0), (slice(None), 1)), ((slice(None), -1), (slice(None), -2))):
        cells = nan[edge]
        filled[edge][cells] = arr[inner][cells]
    return filled


def on_truth_grid(values: np.ndarray, src_lat: np.ndarray, src_lon: np.ndarray, dst_lat: np.ndarray,
                  dst_lon: np.ndarray, spread_nans: bool, outside: str = "nan", on_grid: bool | None = None) -> np.ndarray:
    """The plane on the truth grid: as it is when nothing needs doing (see ``needs_regrid``),
    else through ``regrid_linear``."""
    if not needs_regrid(values, src_lat, src_lon, dst_lat, dst_lon, spread_nans, on_grid):
        return np.asarray(values)
    return regrid_linear(values, src_lat, src_lon, dst_lat, dst_lon, outside)

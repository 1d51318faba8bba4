"""The embedded world written in the real formats of the production sources (for loopback stand-ins).

What the tests and the production rehearsal serve in place of NOAA, ARCO-ERA5, the WeatherBench2
climatology and the CDS: the same world's fields, encoded as those services encode them, so the
production loaders read real bytes and the reference miners still score as they do on the world.

- NOAA GFS: GRIB2 messages (ecCodes) in GFS's order with unneeded ones between them, HGT as
  geopotential height, and a wgrib2 ``.idx`` (``n:offset:d=YYYYMMDDHH:VAR:LEVEL:FCST:``).
- ARCO-ERA5: Zarr v2, consolidated, long names, 37 levels, ``latitude`` descending, an hourly time
  axis of which only the written steps hold chunks (the rest read as missing, as ARCO's padding),
  one chunk per time step with every level, reach in ``valid_time_stop``/``valid_time_stop_era5t``.
- WeatherBench2 climatology: Zarr v2, dims ``hour``/``dayofyear``/``level``/``latitude`` (ascending)
  /``longitude``, one chunk per (hour, day of year).
- CDS: ERA5 as GRIB1 with ECMWF parameter ids (what the CDS returns for ``data_format: grib``).
"""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path
from typing import Callable, Iterable, Sequence

import numpy as np
import xarray as xr

from gaia_dagster.core.cds_request import CDS_VARIABLES
from gaia_dagster.core.contract import LEVEL_VARIABLES, PRESSURE_LEVELS, SURFACE_VARIABLES
from gaia_dagster.core.gfs_index import GRAVITY

ARCO_LEVELS: tuple[int, ...] = (1, 2, 3, 5, 7, 10, 20, 30, 50, 70, 100, 125, 150, 175, 200, 225, 250, 300, 350, 400,
                                450, 500, 550, 600, 650, 700, 750, 775, 800, 825, 850, 875, 900, 925, 950, 975, 1000)
LONG_NAMES: dict[str, str] = CDS_VARIABLES  # the long names ARCO-ERA5, WeatherBench2 and the CDS share
ERA5_PARAM_IDS: dict[str, int] = {"2t": 167, "10u": 165, "10v": 166, "msl": 151,
                                  "t": 130, "u": 131, "v": 132, "q": 133, "z": 129}
# GFS: contract name -> (idx VAR, GRIB2 param: shortName or (discipline, category, number)).
GFS_SURFACE: dict[str, tuple[str, str, object, str, int]] = {
    "msl": ("PRMSL", "mean sea level", (0, 3, 1), "meanSea", 0),
    "2t": ("TMP", "2 m above ground", "2t", "heightAboveGround", 2),
    "10u": ("UGRD", "10 m above ground", "10u", "heightAboveGround", 10),
    "10v": ("VGRD", "10 m above ground", "10v", "heightAboveGround", 10),
}
GFS_LEVEL: dict[str, tuple[str, str]] = {"z": ("HGT", "gh"), "t": ("TMP", "t"), "q": ("SPFH", "q"),
                                         "u": ("UGRD", "u"), "v": ("VGRD", "v")}


def grib_message(values: np.ndarray, lat: np.ndarray, lon: np.ndarray, edition: int, type_of_level: str,
                 level: int, param: object, bits: int = 16) -> bytes:
    """One GRIB message of a regular lat/lon field (lat descending, lon 0..360); ``param`` is a
    shortName, an ECMWF paramId (int) or a GRIB2 (discipline, category, number)."""
    import eccodes

    kind = "pl" if type_of_level == "isobaricInhPa" else "sfc"
    handle = eccodes.codes_grib_new_from_samples(f"regular_ll_{kind}_grib{edition}")
    try:
        step = float(lon[1] - lon[0])
        for key, value in (("Ni", lon.size), ("Nj", lat.size), ("latitudeOfFirstGridPointInDegrees", float(lat[0])),
                           ("longitudeOfFirstGridPointInDegrees", float(lon[0])),
                           ("latitudeOfLastGridPointInDegrees", float(lat[-1])),
                           ("longitudeOfLastGridPointInDegrees", float(lon[-1])),
                           ("iDirectionIncrementInDegrees", step), ("jDirectionIncrementInDegrees", step)):
            eccodes.codes_set(handle, key, value)
        if edition == 2:
            eccodes.codes_set(handle, "typeOfLevel", type_of_level)
        eccodes.codes_set(handle, "level", level)
        if isinstance(param, tuple):
            for key, value in zip(("discipline", "parameterCategory", "parameterNumber"), param):
                eccodes.codes_set(handle, key, value)
        elif isinstance(param, int):
            eccodes.codes_set(handle, "paramId", param)
        else:
            eccodes.codes_set(handle, "shortName", param)
        eccodes.codes_set(handle, "bitsPerValue", bits)
        eccodes.codes_set_values(handle, np.asarray(values, dtype=float).ravel())
        return eccodes.codes_get_message(handle)
    finally:
        eccodes.codes_release(handle)


def gfs_grib_file(state: xr.Dataset, cycle: datetime, forecast: str) -> tuple[bytes, str]:
    """A GFS ``pgrb2.0p25`` file of ``state`` (contract fields) and its ``.idx``: PRMSL first, then
    every level's HGT/TMP/RH/SPFH/UGRD/VGRD (RH and 975 mb not wanted), then the 2 m and 10 m fields."""
    lat, lon = state["lat"].values, state["lon"].values
    filler = np.zeros((lat.size, lon.size))
    entries: list[tuple[str, str, bytes]] = []

    def add(var: str, level_text: str, message: bytes) -> None:
        entries.append((var, level_text, message))

    var, text, param, tol, lvl = GFS_SURFACE["msl"]
    add(var, text, grib_message(state["msl"].values, lat, lon, 2, tol, lvl, param))
    for p in (975,) + PRESSURE_LEVELS:
        for name, (idx_var, short) in GFS_LEVEL.items():
            if p == 975:
                values = filler
            else:
                values = state[name].sel(pressure_level=p).values
                values = values / GRAVITY if name == "z" else values
            add(idx_var, f"{p} mb", grib_message(values, lat, lon, 2, "isobaricInhPa", p, short))
            if name == "t":
                add("RH", f"{p} mb", grib_message(filler + 50, lat, lon, 2, "isobaricInhPa", p, "r", bits=8))
    for name in ("2t", "10u", "10v"):
        var, text, param, tol, lvl = GFS_SURFACE[name]
        add(var, text, grib_message(state[name].values, lat, lon, 2, tol, lvl, param))
    body, lines = bytearray(), []
    for n, (var, level_text, message) in enumerate(entries, start=1):
        lines.append(f"{n}:{len(body)}:d={cycle:%Y%m%d%H}:{var}:{level_text}:{forecast}:")
        body += message
    return bytes(body), "\n".join(lines) + "\n"


def era5_grib(state: xr.Dataset, variables: Iterable[str], levels: Sequence[int] = PRESSURE_LEVELS) -> bytes:
    """ERA5 as the CDS serves it (GRIB1, ECMWF parameter ids): each variable, each level."""
    lat, lon = state["lat"].values, state["lon"].values
    out = bytearray()
    for name in variables:
        if name in SURFACE_VARIABLES:
            out += grib_message(state[name].values, lat, lon, 1, "surface", 0, ERA5_PARAM_IDS[name], bits=24)
        else:
            for p in levels:
                out += grib_message(state[name].sel(pressure_level=p).values, lat, lon, 1, "isobaricInhPa", p,
                                    ERA5_PARAM_IDS[name], bits=24)
    return bytes(out)


def _zarr_array(group, name: str, dims: tuple[str, ...], shape: tuple[int, ...], chunks: tuple[int, ...],
                dtype=np.float32, fill=np.nan):  # noqa: ANN001, ANN202
    array = group.create_array(name, shape=shape, chunks=chunks, dtype=dtype, fill_value=fill, overwrite=True)
    array.attrs["_ARRAY_DIMENSIONS"] = list(dims)
    return array


def _coord(group, name: str, values: np.ndarray, attrs: dict | None = None) -> None:  # noqa: ANN001
    array = _zarr_array(group, name, (name,), values.shape, values.shape, dtype=values.dtype, fill=None)
    array[...] = values
    array.attrs.update(attrs or {})


def write_arco_store(path: Path, start: datetime, hours: int, written: Sequence[datetime],
                     state_at: Callable[[datetime], xr.Dataset], stop: datetime, stop_era5t: datetime) -> None:
    """An ARCO-ERA5 lookalike at ``path``: hourly axis ``start .. start + hours``, chunks written only
    at the ``written`` times (the world's state there; non-contract levels hold zeros)."""
    import zarr

    sample = state_at(written[0])
    lat, lon = sample["lat"].values, sample["lon"].values
    group = zarr.open_group(str(path), mode="w", zarr_format=2)
    group.attrs.update({"valid_time_start": "1940-01-01", "valid_time_stop": stop.strftime("%Y-%m-%d"),
                        "valid_time_stop_era5t": stop_era5t.strftime("%Y-%m-%dT%H:%M:%S")})
    n = hours + 1
    _coord(group, "time", np.arange(n, dtype=np.int64),
           {"units": f"hours since {start:%Y-%m-%d %H:%M:%S}", "calendar": "proleptic_gregorian"})
    _coord(group, "level", np.asarray(ARCO_LEVELS, dtype=np.int64))
    _coord(group, "latitude", np.asarray(lat, dtype=np.float32))
    _coord(group, "longitude", np.asarray(lon, dtype=np.float32))
    arrays = {}
    for name in (*SURFACE_VARIABLES, *LEVEL_VARIABLES):
        if name in SURFACE_VARIABLES:
            arrays[name] = _zarr_array(group, LONG_NAMES[name], ("time", "latitude", "longitude"),
                                       (n, lat.size, lon.size), (1, lat.size, lon.size))
        else:
            arrays[name] = _zarr_array(group, LONG_NAMES[name], ("time", "level", "latitude", "longitude"),
                                       (n, len(ARCO_LEVELS), lat.size, lon.size), (1, len(ARCO_LEVELS), lat.size, lon.size))
    rows = [ARCO_LEVELS.index(p) for p in PRESSURE_LEVELS]
    for moment in written:
        i = int((moment - start) / timedelta(hours=1))
        state = state_at(moment)
        for name, array in arrays.items():
            if name in SURFACE_VARIABLES:
                array[i] = state[name].values
            else:
                block = np.zeros((len(ARCO_LEVELS), lat.size, lon.size), np.float32)
                block[rows] = state[name].values
                array[i] = block
        del state
    zarr.consolidate_metadata(str(path))


def write_wb2_climatology(path: Path, keys: Iterable[tuple[int, int]],
                          climatology_at: Callable[[int, int], xr.Dataset]) -> None:
    """A WeatherBench2 climatology lookalike: every (hour, day of year) slot, chunks written only for
    ``keys`` ((day of year, hour)), latitude ascending as WB2 stores it."""
    import zarr

    keys = sorted(set(keys))
    sample = climatology_at(*keys[0]).sortby("lat")
    lat, lon = sample["lat"].values, sample["lon"].values
    hours, days = np.array([0, 6, 12, 18], dtype=np.int64), np.arange(1, 367, dtype=np.int64)
    group = zarr.open_group(str(path), mode="w", zarr_format=2)
    _coord(group, "hour", hours)
    _coord(group, "dayofyear", days)
    _coord(group, "level", np.asarray(PRESSURE_LEVELS, dtype=np.int64))
    _coord(group, "latitude", np.asarray(lat, dtype=np.float64))
    _coord(group, "longitude", np.asarray(lon, dtype=np.float64))
    arrays = {}
    for name in (*SURFACE_VARIABLES, *LEVEL_VARIABLES):
        if name in SURFACE_VARIABLES:
            arrays[name] = _zarr_array(group, LONG_NAMES[name], ("hour", "dayofyear", "latitude", "longitude"),
                                       (4, 366, lat.size, lon.size), (1, 1, lat.size, lon.size))
        else:
            arrays[name] = _zarr_array(group, LONG_NAMES[name], ("hour", "dayofyear", "level", "latitude", "longitude"),
                                       (4, 366, len(PRESSURE_LEVELS), lat.size, lon.size),
                                       (1, 1, len(PRESSURE_LEVELS), lat.size, lon.size))
    for dayofyear, hour in keys:
        state = climatology_at(dayofyear, hour).sortby("lat")
        for name, array in arrays.items():
            array[hour // 6, dayofyear - 1] = state[name].values
    zarr.consolidate_metadata(str(path))

"""Pure rules for reading NOAA GFS GRIB2 by byte range (GAIA_SPEC section 7): no network here.

The bucket holds ``gfs.YYYYMMDD/HH/atmos/gfs.tHHz.pgrb2.0p25.fFFF`` with a wgrib2-style ``.idx``
beside it (lines ``n:offset:d=YYYYMMDDHH:VAR:LEVEL:FCST:``). From the index we pick only the
messages the contract needs, turn them into byte ranges and merge the adjacent ones so each run
of wanted messages costs a single HTTP Range request.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Iterable, Sequence

from gaia_dagster.core.contract import ALL_VARIABLES, LEVEL_VARIABLES, PRESSURE_LEVELS, SURFACE_VARIABLES, UNITS

GRAVITY = 9.80665  # m s**-2, WMO standard gravity: geopotential = g * geopotential height

SURFACE_MESSAGES: dict[str, tuple[str, str]] = {
    "2t": ("TMP", "2 m above ground"),
    "10u": ("UGRD", "10 m above ground"),
    "10v": ("VGRD", "10 m above ground"),
    "msl": ("PRMSL", "mean sea level"),
}
LEVEL_MESSAGES: dict[str, str] = {"t": "TMP", "u": "UGRD", "v": "VGRD", "q": "SPFH", "z": "HGT"}


@dataclass(frozen=True)
class IdxEntry:
    """One line of a wgrib2 ``.idx``: message number, byte offset and what the message holds."""

    number: str
    offset: int
    date: str
    variable: str
    level: str
    forecast: str


@dataclass(frozen=True)
class Wanted:
    """A contract field carried by one GRIB message: name, and pressure level (None at the surface)."""

    name: str
    pressure_level: int | None


ATMOS_FOLDER_FROM = datetime(2021, 3, 22, 12, tzinfo=timezone.utc)
"""First cycle under the ``atmos/`` folder: NOAA moved the files there with GFS v16 (2021-03-22 12 UTC);
earlier cycles sit directly under ``gfs.YYYYMMDD/HH/``."""


def gfs_file_url(base_url: str, init_time: datetime, forecast_hour: int) -> str:
    """Rule: ``{base}/gfs.YYYYMMDD/HH/atmos/gfs.tHHz.pgrb2.0p25.fFFF`` for a cycle and forecast hour;
    cycles before 2021-03-22 12 UTC (GFS v16) have no ``atmos/`` folder."""
    t = init_time.astimezone(timezone.utc) if init_time.tzinfo else init_time.replace(tzinfo=timezone.utc)
    if t.hour % 6 or t.minute or t.second:
        raise ValueError(f"{init_time.isoformat()} is not a GFS cycle (00, 06, 12 or 18 UTC)")
    if forecast_hour < 0:
        raise ValueError(f"forecast hour {forecast_hour} is negative")
    hh = f"{t.hour:02d}"
    folder = "atmos/" if t >= ATMOS_FOLDER_FROM else ""
    return (f"{base_url.rstrip('/')}/gfs.{t:%Y%m%d}/{hh}/{folder}"
            f"gfs.t{hh}z.pgrb2.0p25.f{forecast_hour:03d}")


def parse_idx(text: str) -> list[IdxEntry]:
    """Rule: each ``.idx`` line is ``n:offset:d=YYYYMMDDHH:VAR:LEVEL:FCST:``; blank lines are skipped."""
    entries: list[IdxEntry] = []
    for lineno, line in enumerate(text.splitlines(), start=1):
        line = line.strip()
        if not line:
            continue
        parts = line.split(":")
        if len(parts) < 6:
            raise ValueError(f".idx line {lineno} has {len(parts)} fields, expected at least 6: {line!r}")
        number, offset, date, variable, level, forecast = parts[:6]
        entries.append(IdxEntry(number, int(offset), date.removeprefix("d="), variable, level, forecast))
    return entries


def wanted_messages(variables: Sequence[str] | None = None) -> dict[tuple[str, str], Wanted]:
    """Rule: the (VAR, LEVEL) index keys of the contract variables, levels as ``"{p} mb"``."""
    names = list(variables) if variables is not None else list(ALL_VARIABLES)
    unknown = [v for v in names if v not in ALL_VARIABLES]
    if unknown:
        raise KeyError(f"not contract variables: {unknown}")
    wanted: dict[tuple[str, str], Wanted] = {}
    for name in names:
        if name in SURFACE_VARIABLES:
            wanted[SURFACE_MESSAGES[name]] = Wanted(name, None)
        else:
            for p in PRESSURE_LEVELS:
                wanted[(LEVEL_MESSAGES[name], f"{p} mb")] = Wanted(name, p)
    return wanted


def message_ranges(entries: Sequence[IdxEntry]) -> list[tuple[int, int | None]]:
    """Rule: message i spans offset_i .. offset_{i+1}-1; the last runs to the end of file (None).

    Sub-messages sharing an offset (``n.1``, ``n.2``) share their parent's range.
    """
    offsets = sorted({e.offset for e in entries})
    following = {a: b for a, b in zip(offsets, offsets[1:])}
    return [(e.offset, following[e.offset] - 1 if e.offset in following else None) for e in entries]


def select_messages(entries: Sequence[IdxEntry],
                    wanted: dict[tuple[str, str], Wanted]) -> list[tuple[IdxEntry, tuple[int, int | None]]]:
    """Rule: keep the first message of each wanted (VAR, LEVEL), with its byte range; refuse gaps."""
    ranges = message_ranges(entries)
    chosen: dict[tuple[str, str], tuple[IdxEntry, tuple[int, int | None]]] = {}
    for entry, span in zip(entries, ranges):
        key = (entry.variable, entry.level)
        if key in wanted and key not in chosen:
            chosen[key] = (entry, span)
    missing = [f"{v}:{lvl}" for (v, lvl) in wanted if (v, lvl) not in chosen]
    if missing:
        raise LookupError(f"the .idx lacks {len(missing)} needed messages: {', '.join(missing[:8])}"
                          + (" ..." if len(missing) > 8 else ""))
    return sorted(chosen.values(), key=lambda pair: pair[1][0])


def merge_ranges(ranges: Iterable[tuple[int, int | None]]) -> list[tuple[int, int | None]]:
    """Rule: adjacent or overlapping byte ranges become one (end None = to end of file)."""
    merged: list[tuple[int, int | None]] = []
    for start, end in sorted(set(ranges), key=lambda r: r[0]):
        if merged:
            last_start, last_end = merged[-1]
            if last_end is None:
                continue
            if start <= last_end + 1:
                merged[-1] = (last_start, None if end is None else max(end, last_end))
                continue
        merged.append((start, end))
    return merged


def range_header(start: int, end: int | None) -> str:
    """Rule: an HTTP ``Range`` value ``bytes=start-end`` (inclusive), open-ended for the last message."""
    return f"bytes={start}-" if end is None else f"bytes={start}-{end}"


def geopotential(height):  # noqa: ANN001, ANN201 - numpy or xarray alike
    """Rule: GFS ``HGT`` is geopotential height (gpm); contract ``z`` = HGT x 9.80665 (m**2 s**-2)."""
    return height * GRAVITY


def is_level_variable(name: str) -> bool:
    """Rule: the level variables are the ones on ``(pressure_level, lat, lon)``."""
    return name in LEVEL_VARIABLES


def normalise_grid(dataset):  # noqa: ANN001, ANN201 - xarray.Dataset in and out
    """Rule (contract grid): dims ``lat``/``lon``/``pressure_level``, lat 90 -> -90, lon 0..360 ascending.

    Accepts ``latitude``/``longitude``/``level``/``isobaricInhPa`` names and longitudes in -180..180.
    """
    import numpy as np

    renames = {old: new for old, new in (("latitude", "lat"), ("longitude", "lon"),
                                         ("level", "pressure_level"), ("isobaricInhPa", "pressure_level"))
               if old in dataset.dims or old in dataset.coords}
    ds = dataset.rename(renames)
    lon = np.mod(np.asarray(ds["lon"].values, dtype=float), 360.0)
    ds = ds.assign_coords(lon=lon).sortby("lon").sortby("lat", ascending=False)
    if "pressure_level" in ds.dims:
        ds = ds.sel(pressure_level=list(PRESSURE_LEVELS))
        ds = ds.assign_coords(pressure_level=np.asarray(PRESSURE_LEVELS, dtype=np.int64))
    return ds


def contract_dataset(fields: dict, attrs: dict | None = None):  # noqa: ANN001, ANN201
    """Rule (contract layout): float32 variables in the requested order, surface on ``(lat, lon)``
    and levels on ``(pressure_level, lat, lon)``, stray scalar coordinates dropped."""
    import numpy as np
    import xarray as xr

    out = {}
    for name, array in fields.items():
        dims = ("pressure_level", "lat", "lon") if is_level_variable(name) else ("lat", "lon")
        array = array.transpose(*dims)
        keep = {c: array.coords[c] for c in dims if c in array.coords}
        out[name] = xr.DataArray(np.asarray(array.values, dtype=np.float32), dims=dims, coords=keep,
                                 attrs={"units": UNITS[name]})
    return xr.Dataset(out, attrs=dict(attrs or {}))

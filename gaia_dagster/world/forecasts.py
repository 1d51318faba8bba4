"""What the reference miner's profiles forecast in the embedded world (GAIA_SPEC section 3 layout).

- good: truth + a smooth error growing with lead, 0.6 x the GFS forecast error at every lead and
  drawn independently of it (its own seed, per miner ``member``);
- persistence: the GFS analysis at T0 held for every lead;
- climatology: the climatology of each valid time;
- clone: the GFS forecast for every lead (caught by the day-1 clone penalty);
- nan: every value NaN (caught by verification).
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Iterator

import numpy as np
import xarray as xr

from gaia_dagster.core.contract import ALL_VARIABLES, FORECAST_LEAD_HOURS, LEVEL_VARIABLES, PRESSURE_LEVELS, UNITS
from gaia_dagster.world.atmosphere import SyntheticAtmosphere, as_utc, gfs_forecast_error

PROFILES: tuple[str, ...] = ("good", "persistence", "climatology", "clone", "nan")
GOOD_ERROR_FRACTION = 0.6


def good_forecast_error(lead_hours: float) -> float:
    """The good profile's error fraction: 0.6 x the GFS forecast error at the same lead."""
    return GOOD_ERROR_FRACTION * gfs_forecast_error(lead_hours)


def _good(atmosphere: SyntheticAtmosphere, t0: datetime, lead_hours: int, member: str) -> xr.Dataset:
    """Truth at T0 + lead + the good profile's smooth error, seeded by miner, T0 and lead."""
    valid = t0 + timedelta(hours=lead_hours)
    key = f"good|{member}|{t0.isoformat()}|{lead_hours}"
    values = atmosphere.planes(valid, None, good_forecast_error(lead_hours), key)
    return atmosphere.dataset(values, None, {"source": "synthetic good forecast"})


def _all_nan(atmosphere: SyntheticAtmosphere) -> xr.Dataset:
    """Every plane NaN."""
    shape = (len(ALL_VARIABLES) - len(LEVEL_VARIABLES) + len(LEVEL_VARIABLES) * len(PRESSURE_LEVELS),)
    return atmosphere.dataset(np.full(shape + atmosphere.grid.shape, np.nan, dtype=np.float32))


def forecast_step(atmosphere: SyntheticAtmosphere, profile: str, init_time: datetime, lead_hours: int,
                  member: str = "") -> xr.Dataset:
    """One valid time (T0 + lead) of a profile's forecast on (lat, lon) / (pressure_level, lat, lon).

    ``member`` (the miner's hotkey) makes two good miners draw different errors.
    """
    t0 = as_utc(init_time)
    if profile == "good":
        ds = _good(atmosphere, t0, lead_hours, member)
    elif profile == "persistence":
        ds = atmosphere.gfs_analysis(t0)
    elif profile == "climatology":
        ds = atmosphere.climatology(t0 + timedelta(hours=lead_hours))
    elif profile == "clone":
        ds = atmosphere.gfs_forecast(t0, lead_hours)
    elif profile == "nan":
        ds = _all_nan(atmosphere)
    else:
        raise ValueError(f"unknown forecast profile {profile!r} (expected one of {PROFILES})")
    return ds.assign_attrs({"forecast_start_time": t0.isoformat(), "profile": profile,
                            "lead_hours": int(lead_hours)})


def valid_time64(init_time: datetime, lead_hours: int) -> np.datetime64:
    """T0 + lead as a naive-UTC datetime64[ns] (the contract's ``time`` values)."""
    return np.datetime64((as_utc(init_time) + timedelta(hours=lead_hours)).replace(tzinfo=None), "ns")


def forecast_steps(atmosphere: SyntheticAtmosphere, profile: str, init_time: datetime,
                   member: str = "") -> Iterator[xr.Dataset]:
    """The 40 steps T0+6h..T0+240h one at a time, each with a length-1 ``time`` dim (to stream writes)."""
    for lead in FORECAST_LEAD_HOURS:
        step = forecast_step(atmosphere, profile, init_time, lead, member)
        yield step.expand_dims(time=[valid_time64(init_time, lead)])


def forecast_for_profile(atmosphere: SyntheticAtmosphere, profile: str, init_time: datetime,
                         member: str = "") -> xr.Dataset:
    """The whole 40-step forecast in the contract: (time, lat, lon) and (time, pressure_level,
    lat, lon), float32, ``time`` naive-UTC datetime64[ns], attrs ``forecast_start_time`` (ISO).

    Arrays are preallocated and filled one step at a time, so peak memory is the forecast itself
    (~320 MB at 1.5 degree) plus one step.
    """
    t0 = as_utc(init_time)
    n, shape = len(FORECAST_LEAD_HOURS), atmosphere.grid.shape
    data = {v: np.empty((n, len(PRESSURE_LEVELS)) + shape if v in LEVEL_VARIABLES else (n,) + shape, np.float32)
            for v in ALL_VARIABLES}
    for i, lead in enumerate(FORECAST_LEAD_HOURS):
        step = forecast_step(atmosphere, profile, t0, lead, member)
        for variable in ALL_VARIABLES:
            data[variable][i] = step[variable].values
    variables = {v: (("time", "pressure_level", "lat", "lon") if v in LEVEL_VARIABLES else ("time", "lat", "lon"),
                     data[v], {"units": UNITS[v]}) for v in ALL_VARIABLES}
    coords = {"time": np.array([valid_time64(t0, h) for h in FORECAST_LEAD_HOURS]),
              "pressure_level": np.array(PRESSURE_LEVELS, dtype=np.int64), "lat": atmosphere.lat,
              "lon": atmosphere.lon}
    return xr.Dataset(variables, coords=coords, attrs={"forecast_start_time": t0.isoformat(), "profile": profile})

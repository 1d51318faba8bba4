"""What the reference miner's profiles forecast in the embedded world.

- good: truth plus a smooth error growing with lead, 0.6 x the GFS error and independent of it;
- persistence: the GFS analysis at T0 held for every lead;
- climatology: the climatology of each valid time;
- clone: the GFS forecast itself (caught by the day-1 clone penalty);
- nan: every value NaN (caught by verification).
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Iterator

import numpy as np
import xarray as xr

from gaia_dagster.core.contract import FORECAST_LEAD_HOURS
from gaia_dagster.world.atmosphere import SyntheticAtmosphere, gfs_forecast_error

PROFILES = ("good", "persistence", "climatology", "clone", "nan")
GOOD_ERROR_FRACTION = 0.6


def _utc(moment: datetime) -> datetime:
    return moment.replace(tzinfo=timezone.utc) if moment.tzinfo is None else moment.astimezone(timezone.utc)


def forecast_step(atmosphere: SyntheticAtmosphere, profile: str, init_time: datetime, lead_hours: int,
                  member: str = "") -> xr.Dataset:
    """One valid time of a profile's forecast, on (lat, lon) / (pressure_level, lat, lon).

    ``member`` (the miner's hotkey) makes two miners of the same skill draw different errors.
    """
    t0 = _utc(init_time)
    valid = t0 + timedelta(hours=lead_hours)
    if profile == "good":
        key = f"good|{member}|{t0.isoformat()}|{lead_hours}"
        error = GOOD_ERROR_FRACTION * gfs_forecast_error(lead_hours)
        ds = atmosphere.dataset(lambda v, lev: atmosphere.field(v, lev, valid, error, key))
    elif profile == "persistence":
        ds = atmosphere.gfs_analysis(t0)
    elif profile == "climatology":
        ds = atmosphere.climatology(valid)
    elif profile == "clone":
        ds = atmosphere.gfs_forecast(t0, lead_hours)
    elif profile == "nan":
        ds = atmosphere.climatology(valid)
        ds = ds.map(lambda da: da * np.float32(np.nan))
    else:
        raise ValueError(f"unknown forecast profile {profile!r} (expected one of {PROFILES})")
    return ds.assign_attrs({"forecast_start_time": t0.isoformat(), "profile": profile})


def forecast_steps(atmosphere: SyntheticAtmosphere, profile: str, init_time: datetime,
                   member: str = "") -> Iterator[xr.Dataset]:
    """The 40 steps T0+6h..T0+240h one at a time, each with a length-1 ``time`` dim."""
    t0 = _utc(init_time)
    for lead in FORECAST_LEAD_HOURS:
        valid = np.datetime64((t0 + timedelta(hours=lead)).replace(tzinfo=None), "ns")
        yield forecast_step(atmosphere, profile, t0, lead, member).expand_dims(time=[valid])


def forecast_for_profile(atmosphere: SyntheticAtmosphere, profile: str, init_time: datetime,
                         member: str = "") -> xr.Dataset:
    """The whole 40-step forecast of a profile in the data contract (held in memory)."""
    return xr.concat(list(forecast_steps(atmosphere, profile, init_time, member)), dim="time")

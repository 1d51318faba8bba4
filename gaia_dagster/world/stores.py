"""The embedded world written as stores in the data contract: a miner forecast, ERA5 truth over
the forecast's valid times, and a climatology on (dayofyear, hour). Used by the score command's
tests and the scoring benchmark."""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path
from typing import Sequence

import numpy as np
import xarray as xr

from gaia_dagster.core.contract import FORECAST_LEAD_HOURS
from gaia_dagster.world.atmosphere import SyntheticAtmosphere
from gaia_dagster.world.forecasts import forecast_steps


def _naive(moment: datetime) -> np.datetime64:
    return np.datetime64(moment.replace(tzinfo=None), "ns")


def _chunk_encoding(ds: xr.Dataset) -> dict:
    """One chunk per time step (and level) with the full lat/lon plane, as the contract's stores;
    times as int64 hours, so appended steps encode exactly."""
    out = {"time": {"units": "hours since 2000-01-01", "dtype": "int64"}} if "time" in ds.coords else {}
    for name, da in ds.data_vars.items():
        out[name] = {"chunks": tuple(1 if d in ("time", "pressure_level", "dayofyear", "hour") else da.sizes[d]
                                     for d in da.dims)}
    return out


def write_forecast(path: Path, atmosphere: SyntheticAtmosphere, profile: str, t0: datetime,
                   zarr_format: int = 2, leads: Sequence[int] | None = None) -> Path:
    """A miner's forecast store (the 40 steps, or only ``leads``), written one step at a time."""
    steps = forecast_steps(atmosphere, profile, t0)
    if leads is not None:
        wanted = {_naive(t0 + timedelta(hours=h)) for h in leads}
        steps = (s for s in steps if s["time"].values[0] in wanted)
    for i, step in enumerate(steps):
        if i == 0:
            step.to_zarr(path, mode="w", zarr_format=zarr_format, consolidated=True, encoding=_chunk_encoding(step))
        else:
            step.to_zarr(path, append_dim="time", zarr_format=zarr_format, consolidated=True)
    return path


def write_truth(path: Path, atmosphere: SyntheticAtmosphere, t0: datetime,
                leads: Sequence[int] = FORECAST_LEAD_HOURS, zarr_format: int = 2) -> Path:
    """ERA5 of the world at the forecast's valid times, with a ``time`` dim."""
    for i, lead in enumerate(leads):
        valid = t0 + timedelta(hours=lead)
        step = atmosphere.era5(valid).expand_dims(time=[_naive(valid)])
        if i == 0:
            step.to_zarr(path, mode="w", zarr_format=zarr_format, consolidated=True, encoding=_chunk_encoding(step))
        else:
            step.to_zarr(path, append_dim="time", zarr_format=zarr_format, consolidated=True)
    return path


def write_climatology(path: Path, atmosphere: SyntheticAtmosphere, valid_times: Sequence[datetime],
                      zarr_format: int = 2) -> Path:
    """A climatology on (dayofyear, hour, [pressure_level], lat, lon) covering ``valid_times``."""
    days = sorted({t.timetuple().tm_yday for t in valid_times})
    hours = [0, 6, 12, 18]
    planes = []
    for day in days:
        per_hour = []
        for hour in hours:
            moment = datetime(2001, 1, 1) + timedelta(days=day - 1, hours=hour)
            per_hour.append(atmosphere.climatology(moment).expand_dims(hour=[hour]))
        planes.append(xr.concat(per_hour, dim="hour").expand_dims(dayofyear=[day]))
    clim = xr.concat(planes, dim="dayofyear")
    clim.to_zarr(path, mode="w", zarr_format=zarr_format, consolidated=True, encoding=_chunk_encoding(clim))
    return path

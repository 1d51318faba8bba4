"""The embedded world behind the source protocols of ``core.sources``."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Callable, Sequence

import xarray as xr

from gaia_dagster.world.atmosphere import SyntheticAtmosphere

ERA5_LATENCY = timedelta(days=5)


def _utc(moment: datetime) -> datetime:
    return moment.replace(tzinfo=timezone.utc) if moment.tzinfo is None else moment.astimezone(timezone.utc)


class WorldGFSSource:
    def __init__(self, atmosphere: SyntheticAtmosphere):
        self.atmosphere = atmosphere

    def analysis(self, valid_time: datetime, variables: Sequence[str] | None = None) -> xr.Dataset:
        return self.atmosphere.gfs_analysis(valid_time, variables)

    def forecast(self, init_time: datetime, lead_hours: int, variables: Sequence[str] | None = None) -> xr.Dataset:
        return self.atmosphere.gfs_forecast(init_time, lead_hours, variables)


class WorldERA5Source:
    """ERA5 of the world, available ``latency`` (5 days) after the valid time, as in reality."""

    def __init__(self, atmosphere: SyntheticAtmosphere, now: Callable[[], datetime] | None = None,
                 latency: timedelta = ERA5_LATENCY):
        self.atmosphere = atmosphere
        self.now = now or (lambda: datetime.now(timezone.utc))
        self.latency = latency

    def available_until(self) -> datetime | None:
        return _utc(self.now()) - self.latency

    def truth(self, valid_time: datetime, variables: Sequence[str] | None = None) -> xr.Dataset:
        until = self.available_until()
        if until is None or _utc(valid_time) > until:
            raise LookupError(f"ERA5 for {_utc(valid_time).isoformat()} is not available yet "
                              f"(available until {until.isoformat() if until else 'nothing'})")
        return self.atmosphere.era5(valid_time, variables)


class WorldClimatologySource:
    def __init__(self, atmosphere: SyntheticAtmosphere):
        self.atmosphere = atmosphere

    def climatology(self, valid_time: datetime, variables: Sequence[str] | None = None) -> xr.Dataset:
        return self.atmosphere.climatology(valid_time, variables)

"""The embedded world behind the source protocols of ``core.sources`` (GFS, ERA5, climatology)."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Callable, Sequence

import xarray as xr

from gaia_dagster.world.atmosphere import SyntheticAtmosphere, as_utc

ERA5_LATENCY = timedelta(days=5)


def _utc_now() -> datetime:
    """The wall clock in UTC (only the ERA5 availability rule reads it)."""
    return datetime.now(timezone.utc)


class WorldGFSSource:
    """GFS of the world: the analysis (day-1 truth) and the 00 UTC forecast (day-1 reference)."""

    def __init__(self, atmosphere: SyntheticAtmosphere):
        self.atmosphere = atmosphere

    def analysis(self, valid_time: datetime, variables: Sequence[str] | None = None) -> xr.Dataset:
        """GFS analysis at ``valid_time``: truth + a small smooth error."""
        return self.atmosphere.gfs_analysis(valid_time, variables)

    def forecast(
        self, init_time: datetime, lead_hours: int, variables: Sequence[str] | None = None
    ) -> xr.Dataset:
        """GFS forecast from ``init_time`` at ``lead_hours``: error growing with lead."""
        return self.atmosphere.gfs_forecast(init_time, lead_hours, variables)


class WorldERA5Source:
    """ERA5 of the world (= its truth), readable ``latency`` (5 days) after the valid time."""

    def __init__(self, atmosphere: SyntheticAtmosphere, now: Callable[[], datetime] | None = None,
                 latency: timedelta = ERA5_LATENCY):
        self.atmosphere = atmosphere
        self.now = now or _utc_now
        self.latency = latency

    def available_until(self) -> datetime | None:
        """Latest readable valid time: now - latency (the ERA5T lag)."""
        return as_utc(self.now()) - self.latency

    def truth(self, valid_time: datetime, variables: Sequence[str] | None = None) -> xr.Dataset:
        """ERA5 at ``valid_time``; LookupError when it is later than ``available_until()``."""
        until = self.available_until()
        valid = as_utc(valid_time)
        if until is None or valid > until:
            reach = until.isoformat() if until else "nothing"
            raise LookupError(f"ERA5 for {valid.isoformat()} is not available yet (available until {reach}; "
                              f"ERA5 lags the valid time by {self.latency})")
        return self.atmosphere.era5(valid, variables)


class WorldClimatologySource:
    """The world's climatology: its time mean, the zonal-mean state."""

    def __init__(self, atmosphere: SyntheticAtmosphere):
        self.atmosphere = atmosphere

    def climatology(self, valid_time: datetime, variables: Sequence[str] | None = None) -> xr.Dataset:
        """Climatology for ``valid_time`` (the same zonal-mean state at every time)."""
        return self.atmosphere.climatology(valid_time, variables)

"""The interfaces every data source implements, embedded world and production alike.

Each returns an ``xarray.Dataset`` in the forecast data contract for one valid time: surface
variables on ``(lat, lon)``, level variables on ``(pressure_level, lat, lon)``, lat descending,
lon 0..360. The pipeline depends only on these protocols.
"""

from __future__ import annotations

from datetime import datetime
from typing import Protocol, Sequence

import xarray as xr


class GFSSource(Protocol):
    """GFS analysis (truth for day-1) and the 00 UTC forecast (day-1 reference)."""

    def analysis(self, valid_time: datetime, variables: Sequence[str] | None = None) -> xr.Dataset: ...

    def forecast(
        self, init_time: datetime, lead_hours: int, variables: Sequence[str] | None = None
    ) -> xr.Dataset: ...


class ERA5Source(Protocol):
    """ERA5 reanalysis (truth for the ERA5 score) and how far it reaches."""

    def available_until(self) -> datetime | None:
        """Latest valid time for which ERA5 can be read now (None when nothing is available)."""
        ...

    def truth(self, valid_time: datetime, variables: Sequence[str] | None = None) -> xr.Dataset: ...


class ClimatologySource(Protocol):
    """The 1990-2019 6-hourly climatology, picked by the valid time's day of year and hour."""

    def climatology(self, valid_time: datetime, variables: Sequence[str] | None = None) -> xr.Dataset: ...

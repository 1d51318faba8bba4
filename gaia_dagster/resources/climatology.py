"""The WeatherBench2 ERA5 climatology (GAIA_SPEC section 7), behind ``core.sources.ClimatologySource``.

The store (1990-2019, 6-hourly, 1440x721) has dims ``hour`` in {0, 6, 12, 18}, ``dayofyear``
1..366, ``level`` (level variables), ``latitude`` and ``longitude``, with ERA5 long names. One
(day of year, hour) slice of the requested variables is read per request; the pipeline keeps it in
its data cache (``stages/scoring.py``), the source does not cache. Production reads ``gs://`` and
needs ``gcsfs`` (``storage_options={"token": "anon"}``).
"""

from __future__ import annotations

from datetime import datetime
from typing import Mapping, Sequence

import xarray as xr

from gaia_dagster.resources.era5 import as_utc, open_store, requested, to_contract

WB2_CLIMATOLOGY_URL = "gs://weatherbench2/datasets/era5-hourly-climatology/1990-2019_6h_1440x721.zarr"
CLIMATOLOGY_HOURS: tuple[int, ...] = (0, 6, 12, 18)


def climatology_key(valid_time: datetime) -> tuple[int, int]:
    """Rule: a valid time picks the climatology by (day of year 1..366, hour of day in 0/6/12/18)."""
    valid = as_utc(valid_time)
    if valid.hour not in CLIMATOLOGY_HOURS or valid.minute or valid.second:
        raise ValueError(f"{valid.isoformat()} is not on the 6-hourly climatology (hours {CLIMATOLOGY_HOURS})")
    return valid.timetuple().tm_yday, valid.hour


class WeatherBench2Climatology:
    """The 1990-2019 6-hourly climatology, sliced to the valid time's day of year and hour."""

    def __init__(self, url: str = WB2_CLIMATOLOGY_URL, storage_options: Mapping | None = None):
        self.url = str(url)
        self.storage_options = storage_options
        self._store: xr.Dataset | None = None

    def _open(self) -> xr.Dataset:
        """The store, opened once per source (metadata only)."""
        if self._store is None:
            self._store = open_store(self.url, self.storage_options)
        return self._store

    def climatology(self, valid_time: datetime, variables: Sequence[str] | None = None) -> xr.Dataset:
        """Climatology for ``valid_time`` in the contract: its (day of year, hour) slice of the store."""
        dayofyear, hour = climatology_key(valid_time)
        names = requested(variables)
        attrs = {"source": "WeatherBench2 ERA5 climatology 1990-2019",
                 "valid_time": as_utc(valid_time).isoformat(), "dayofyear": dayofyear, "hour": hour}
        store = self._open()
        try:
            sliced = store.sel(dayofyear=dayofyear, hour=hour)
        except KeyError as exc:
            raise LookupError(f"climatology has no dayofyear={dayofyear} hour={hour}") from exc
        return to_contract(sliced, names, attrs)

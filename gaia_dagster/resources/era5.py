"""ERA5 from Google's ARCO-ERA5 Zarr (GAIA_SPEC section 7), behind ``core.sources.ERA5Source``.

The store is opened lazily with xarray (any fsspec URL, or a local path); only the requested
valid time and variables are read (ARCO chunks are a whole 37-level globe, ~154 MB a variable),
kept at the 13 contract levels. The source reads, it does not cache: the pipeline keeps what it
read in its data cache, one entry per (valid time, variable) (``stages/scoring.py``), so a valid
time is read once whatever reads it next.

Reach: ARCO publishes it in the root attributes ``valid_time_stop`` (end of final ERA5) and
``valid_time_stop_era5t`` (end of the preliminary ERA5T tail); the time axis itself is padded
far into the future, so it is never used for availability.

Production reads ``gs://`` and therefore needs ``gcsfs`` installed (anonymous access:
``storage_options={"token": "anon"}``); it is not a dependency of this package.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Mapping, Sequence

import numpy as np
import pandas as pd
import xarray as xr

from gaia_dagster.core.contract import ALL_VARIABLES
from gaia_dagster.core.gfs_index import contract_dataset, normalise_grid

ARCO_ERA5_URL = "gs://gcp-public-data-arco-era5/ar/full_37-1h-0p25deg-chunk-1.zarr-v3"
STOP_ATTRIBUTES: tuple[str, ...] = ("valid_time_stop_era5t", "valid_time_stop")

# Contract name -> the long name ARCO-ERA5 and WeatherBench2 use for it.
LONG_NAMES: dict[str, str] = {
    "2t": "2m_temperature",
    "10u": "10m_u_component_of_wind",
    "10v": "10m_v_component_of_wind",
    "msl": "mean_sea_level_pressure",
    "t": "temperature",
    "u": "u_component_of_wind",
    "v": "v_component_of_wind",
    "q": "specific_humidity",
    "z": "geopotential",
}


def as_utc(moment: datetime) -> datetime:
    """A timezone-aware UTC datetime (naive input is taken to be UTC already)."""
    return moment.replace(tzinfo=timezone.utc) if moment.tzinfo is None else moment.astimezone(timezone.utc)


def naive_utc(moment: datetime) -> np.datetime64:
    """Rule: Zarr time coordinates are naive UTC; compare as ``datetime64[ns]``."""
    return np.datetime64(as_utc(moment).replace(tzinfo=None), "ns")


def requested(variables: Sequence[str] | None) -> list[str]:
    """Rule: no selection means every contract variable; unknown names are refused."""
    names = list(ALL_VARIABLES) if variables is None else list(variables)
    unknown = [v for v in names if v not in LONG_NAMES]
    if unknown:
        raise KeyError(f"not contract variables: {unknown}")
    return names


def parse_stop(value: str) -> datetime:
    """Rule: a stop attribute is a timestamp; a bare date (``2026-06-30``) means its last hour, 23 UTC."""
    text = str(value).strip()
    stamp = pd.Timestamp(text)
    moment = stamp.to_pydatetime()
    if len(text) == 10:  # YYYY-MM-DD: the whole day is published
        moment = moment.replace(hour=23)
    return as_utc(moment)


def reach_from_attrs(attrs: Mapping, names: Sequence[str] = STOP_ATTRIBUTES) -> datetime | None:
    """Rule: ERA5 reaches the latest of the stop attributes present (None when none is)."""
    stops = [parse_stop(attrs[name]) for name in names if attrs.get(name)]
    return max(stops) if stops else None


def open_store(url: str, storage_options: Mapping | None = None) -> xr.Dataset:
    """Open a Zarr store lazily without dask (any fsspec URL or local path)."""
    kwargs: dict = {"engine": "zarr", "chunks": None}
    if storage_options is not None:
        kwargs["storage_options"] = dict(storage_options)
    return xr.open_dataset(url, **kwargs)


def to_contract(dataset: xr.Dataset, variables: Sequence[str], attrs: Mapping | None = None) -> xr.Dataset:
    """Rule: long names -> contract names, 13 contract levels, lat/lon/pressure_level dims, float32."""
    missing = [LONG_NAMES[v] for v in variables if LONG_NAMES[v] not in dataset.data_vars]
    if missing:
        raise LookupError(f"the store lacks {missing}")
    picked = dataset[[LONG_NAMES[v] for v in variables]].rename({LONG_NAMES[v]: v for v in variables})
    picked = normalise_grid(picked)
    return contract_dataset({v: picked[v] for v in variables}, attrs)


class ArcoERA5Source:
    """ERA5 truth from ARCO-ERA5, readable up to the store's own published reach."""

    def __init__(self, url: str = ARCO_ERA5_URL, storage_options: Mapping | None = None, include_era5t: bool = True):
        self.url = str(url)
        self.storage_options = storage_options
        self.include_era5t = include_era5t
        self._store: xr.Dataset | None = None

    def _open(self) -> xr.Dataset:
        """The store, opened once per source (metadata only; data is read on selection)."""
        if self._store is None:
            self._store = open_store(self.url, self.storage_options)
        return self._store

    def available_until(self) -> datetime | None:
        """Latest readable valid time: ``valid_time_stop_era5t`` (or ``valid_time_stop`` alone when
        ERA5T is excluded) from the store's attributes."""
        names = STOP_ATTRIBUTES if self.include_era5t else ("valid_time_stop",)
        return reach_from_attrs(self._open().attrs, names)

    def truth(self, valid_time: datetime, variables: Sequence[str] | None = None) -> xr.Dataset:
        """ERA5 at ``valid_time`` read from the store, after checking the published reach
        (LookupError past ``available_until()``)."""
        valid = as_utc(valid_time)
        names = requested(variables)
        until = self.available_until()
        if until is None or valid > until:
            reach = until.isoformat() if until else "nothing"
            raise LookupError(f"ERA5 for {valid.isoformat()} is not available yet (available until {reach})")
        store = self._open()
        stamp = naive_utc(valid)
        if stamp not in store["time"].values.astype("datetime64[ns]"):
            raise LookupError(f"ERA5 store has no time {valid.isoformat()}")
        return to_contract(store.sel(time=stamp), names, {"source": "ARCO-ERA5", "valid_time": valid.isoformat()})


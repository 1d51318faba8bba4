"""Test helper: a dataset cache entry read whole, through the cache's own rule (``cached_entry``:
fill once, verify every file's digest on read, rebuild when incomplete). The validator reads its
entries a plane at a time (``held_datasets``); the cache tests read them whole, to compare values."""

from __future__ import annotations

from pathlib import Path
from typing import Callable, Mapping

import xarray as xr

from gaia_dagster.resources.cache import cached_entry, zarr_entry


def load_zarr(path: Path, marker: Mapping) -> xr.Dataset:
    """An entry opened, holding every variable of its marker, and read fully into memory."""
    with xr.open_dataset(path, engine="zarr", chunks=None, consolidated=True, cache=False) as ds:
        missing = [v for v in marker.get("variables", []) if v not in ds.data_vars]
        if missing:
            raise KeyError(f"{path} lacks the variables {missing} its marker lists")
        return ds.load()


def cached(path: Path, produce: Callable[[], xr.Dataset]) -> xr.Dataset:
    """The entry at ``path``, produced and written on first use, verified on every read."""
    return cached_entry(path, zarr_entry(produce), load_zarr)

"""How the reference miner lays out what it serves: our store format, or Gaia's (``gaia-format``).

A ``gaia-format`` miner forecasts like ``good`` but writes its store as deployed Gaia miners do
(GAIA_SPEC 2-3, issue 11): 720 latitude rows (90 -> one step above -90, the south pole left out, as
Aurora-based miners emit), Gaia's manifest layout (indented JSON with ``profile_structure_version``),
``manifest.sig`` as 64 raw bytes, and a ``zarr_store_url`` relative to its own URL.

The hostile-store faults (``miner/faults.py``) are applied here too, before the manifest is written,
so the miner signs them as its own.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any, Iterable

import xarray as xr

from gaia_dagster.miner import faults
from gaia_dagster.miner.store import write_manifest, write_zarr_store

GAIA_FORMAT = "gaia-format"
GAIA_CONTENT = "good"   # what a gaia-format miner forecasts


def content_profile(profile: str) -> str:
    """The world profile whose forecast a miner profile serves."""
    return GAIA_CONTENT if profile == GAIA_FORMAT else profile


def shape_step(profile: str, step: xr.Dataset) -> xr.Dataset:
    """``gaia-format``: the 720-row layout, every row but the last (southernmost) one."""
    return step.isel(lat=slice(0, -1)) if profile == GAIA_FORMAT else step


def store_url(profile: str, public_base_url: str, rel: str) -> str:
    """The ``zarr_store_url`` a miner answers: a path for ``gaia-format`` (as Gaia's miners do), else absolute."""
    path = f"/forecasts/{rel}"
    return path if profile == GAIA_FORMAT else f"{public_base_url}{path}"


def write_served_zarr(path: Path, steps: Iterable[xr.Dataset], init_time: datetime, profile: str,
                      fault: str | None) -> None:
    """The miner's Zarr store in its profile's layout, made hostile when its fault says so (before signing)."""
    write_zarr_store(path, (shape_step(profile, step) for step in steps), init_time)
    faults.before_manifest(fault, path)


def write_served_manifest(path: Path, keypair: Any, profile: str, fault: str | None) -> str:
    """The signed manifest in the profile's format (Gaia's for ``gaia-format``); the verification hash."""
    return write_manifest(path, keypair, gaia_format=profile == GAIA_FORMAT,
                          junk_entries=faults.manifest_junk_entries(fault))

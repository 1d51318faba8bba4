"""Writing a forecast store (GAIA_SPEC section 3, store layout; section 2, manifest).

Zarr v2, one chunk per time step and level with the full lat/lon plane, Blosc zstd, consolidated
metadata, coordinates ``time``/``pressure_level``/``lat``/``lon`` and the ``forecast_start_time``
attribute. The forecast is streamed: only one time step is held in memory at a time. When the
store is complete, ``manifest.json`` covers every file and ``manifest.sig`` holds the miner
hotkey's signature of it.
"""

from __future__ import annotations

import shutil
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterable, Iterator

import numcodecs
import numpy as np
import xarray as xr
import zarr

from gaia_dagster.core.contract import N_STEPS
from gaia_dagster.core.manifest import MANIFEST_FILE, SIGNATURE_FILE, build_manifest, verification_hash
from gaia_dagster.core.signing import sign_manifest, sign_manifest_raw

COMPRESSOR = numcodecs.Blosc(cname="zstd", clevel=3, shuffle=numcodecs.Blosc.SHUFFLE)
STATIC_COORDS = ("pressure_level", "lat", "lon")
STACKED_DIMS = ("time", "pressure_level")  # one chunk per time step and per level


def _utc(moment: datetime) -> datetime:
    """Naive times are UTC; aware ones convert to UTC."""
    return moment.replace(tzinfo=timezone.utc) if moment.tzinfo is None else moment.astimezone(timezone.utc)


def iter_steps(forecast: xr.Dataset | Iterable[xr.Dataset]) -> Iterator[xr.Dataset]:
    """The forecast one time step at a time (each with a length-1 ``time`` dim).

    A whole dataset with a ``time`` dim is sliced; an iterable of steps is passed through lazily,
    so a generator of steps keeps memory at one step.
    """
    if isinstance(forecast, xr.Dataset):
        for i in range(forecast.sizes["time"]):
            yield forecast.isel(time=[i])
        return
    for step in forecast:
        if "time" not in step.dims:
            raise ValueError("each forecast step needs a length-1 'time' dim")
        yield step


def _chunks(da: xr.DataArray) -> tuple[int, ...]:
    """Store rule: chunks of one time step and one level with the full lat/lon plane."""
    return tuple(1 if dim in STACKED_DIMS else da.sizes[dim] for dim in da.dims)


def _hours_since(values: np.ndarray, t0: datetime) -> np.ndarray:
    """Valid times as int64 hours since T0 (the CF encoding of the ``time`` coordinate)."""
    origin = np.datetime64(t0.replace(tzinfo=None), "ns")
    return ((values.astype("datetime64[ns]") - origin) // np.timedelta64(1, "h")).astype("int64")


def _create_static_coords(group: zarr.Group, step: xr.Dataset) -> None:
    """Coordinates without a time dim (levels, lat, lon), written whole as one chunk each."""
    for name in STATIC_COORDS:
        if name not in step.coords:
            continue
        values = np.asarray(step[name].values)
        array = group.create_array(name, shape=values.shape, dtype=values.dtype, chunks=values.shape,
                                   compressors=COMPRESSOR, fill_value=None,
                                   attributes={"_ARRAY_DIMENSIONS": [name], **step[name].attrs})
        array[...] = values


def _create_time_arrays(group: zarr.Group, step: xr.Dataset, t0: datetime, n_steps: int) -> dict[str, Any]:
    """The ``time`` coordinate and every data variable, sized for ``n_steps`` (resized if wrong)."""
    arrays = {"time": group.create_array(
        "time", shape=(n_steps,), dtype="int64", chunks=(max(n_steps, 1),), compressors=COMPRESSOR, fill_value=None,
        attributes={"_ARRAY_DIMENSIONS": ["time"], "calendar": "proleptic_gregorian",
                    "units": f"hours since {t0.strftime('%Y-%m-%d %H:%M:%S')}"})}
    for name, da in step.data_vars.items():
        if da.dims[0] != "time":
            raise ValueError(f"variable {name} has dims {da.dims}; time must come first")
        arrays[name] = group.create_array(
            name, shape=(n_steps,) + da.shape[1:], dtype="float32", chunks=_chunks(da), compressors=COMPRESSOR,
            fill_value=np.float32(np.nan), attributes={"_ARRAY_DIMENSIONS": list(da.dims), **da.attrs})
    return arrays


def _resize_time(arrays: dict[str, Any], n_steps: int) -> None:
    """Set the time length of every time-dimensioned array (when the step count was not as expected)."""
    for array in arrays.values():
        array.resize((n_steps,) + tuple(array.shape[1:]))


def _write_step(arrays: dict[str, Any], index: int, step: xr.Dataset, t0: datetime) -> None:
    """Write one time step into its region of the time coordinate and of every variable."""
    if index >= arrays["time"].shape[0]:
        _resize_time(arrays, index + 1)
    arrays["time"][index:index + 1] = _hours_since(step["time"].values, t0)
    for name, da in step.data_vars.items():
        arrays[name][index:index + 1] = np.asarray(da.values, dtype="float32")


def write_zarr_store(path: Path, forecast: xr.Dataset | Iterable[xr.Dataset], init_time: datetime,
                     attrs: dict[str, Any] | None = None, expected_steps: int = N_STEPS) -> int:
    """Stream a forecast into a Zarr v2 store at ``path`` (atomically replaced); returns the step count.

    Arrays are sized for ``expected_steps`` up front (the contract's 40) and each step is written
    into its region, so memory holds one step. Written to ``path.partial`` first and renamed, so
    a half-written store is never served.
    """
    t0 = _utc(init_time)
    if isinstance(forecast, xr.Dataset):
        expected_steps = forecast.sizes["time"]
    tmp = path.with_name(path.name + ".partial")
    if tmp.exists():
        shutil.rmtree(tmp)
    group = zarr.open_group(str(tmp), mode="w", zarr_format=2)
    arrays: dict[str, Any] = {}
    n_steps = 0
    for step in iter_steps(forecast):
        if n_steps == 0:
            group.attrs.update({**step.attrs, **(attrs or {}), "forecast_start_time": t0.isoformat()})
            _create_static_coords(group, step)
            arrays = _create_time_arrays(group, step, t0, expected_steps)
        _write_step(arrays, n_steps, step, t0)
        n_steps += 1
    if n_steps == 0:
        raise ValueError("the forecast has no time steps")
    if n_steps != arrays["time"].shape[0]:
        _resize_time(arrays, n_steps)
    zarr.consolidate_metadata(str(tmp), zarr_format=2)
    if path.exists():
        shutil.rmtree(path)
    tmp.rename(path)
    return n_steps


def store_files(path: Path) -> dict[str, bytes]:
    """Every file of a store by relative path ("/" separators), the manifest files excluded."""
    files = {}
    for file in sorted(p for p in path.rglob("*") if p.is_file()):
        rel = file.relative_to(path).as_posix()
        if rel not in (MANIFEST_FILE, SIGNATURE_FILE):
            files[rel] = file.read_bytes()
    return files


def write_manifest(path: Path, keypair, gaia_format: bool = False,  # noqa: ANN001 - a bittensor_wallet Keypair
                   junk_entries: int = 0) -> str:
    """Write ``manifest.json`` over every store file and ``manifest.sig``; returns the verification
    hash. ``gaia_format``: Gaia's manifest layout and a raw 64-byte signature, as its miners write
    them; ``junk_entries``: that many entries for files that do not exist (the huge_manifest fault)."""
    files = store_files(path)
    files.update({f"junk/{i:07d}": b"" for i in range(junk_entries)})
    manifest = build_manifest(files, keypair.ss58_address, gaia_format)
    (path / MANIFEST_FILE).write_bytes(manifest)
    if gaia_format:
        (path / SIGNATURE_FILE).write_bytes(sign_manifest_raw(keypair, manifest))
    else:
        (path / SIGNATURE_FILE).write_text(sign_manifest(keypair, manifest))
    return verification_hash(manifest)


def write_forecast_store(path: Path, forecast: xr.Dataset | Iterable[xr.Dataset], init_time: datetime,
                         keypair, attrs: dict[str, Any] | None = None) -> str:  # noqa: ANN001
    """The miner's whole output rule: the streamed Zarr store, then its signed manifest.

    Returns the verification hash (sha256 of the manifest bytes).
    """
    write_zarr_store(path, forecast, init_time, attrs)
    return write_manifest(path, keypair)

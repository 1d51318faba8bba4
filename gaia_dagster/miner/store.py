"""Writing a forecast store: Zarr v2, one chunk per time step and level, Blosc zstd, consolidated
metadata, then ``manifest.json`` over every file and ``manifest.sig`` by the miner's hotkey."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Iterable

import numcodecs
import xarray as xr
import zarr

from gaia_dagster.core.manifest import MANIFEST_FILE, SIGNATURE_FILE, build_manifest, verification_hash
from gaia_dagster.core.signing import sign_manifest

COMPRESSOR = numcodecs.Blosc(cname="zstd", clevel=3, shuffle=numcodecs.Blosc.SHUFFLE)


def _encoding(step: xr.Dataset, init_iso: str) -> dict:
    """Chunks of one time step (and one level) with the full lat/lon plane; times in hours since T0."""
    encoding = {"time": {"units": f"hours since {init_iso[:19]}", "dtype": "int64"}}
    for name, da in step.data_vars.items():
        chunks = tuple(1 if dim in ("time", "pressure_level") else da.sizes[dim] for dim in da.dims)
        encoding[name] = {"chunks": chunks, "compressors": (COMPRESSOR,), "dtype": "float32"}
    return encoding


def write_store(path: Path, steps: Iterable[xr.Dataset], init_iso: str) -> None:
    """Stream the steps (each with a length-1 time dim) into a Zarr v2 store, one step in memory."""
    tmp = path.with_name(path.name + ".partial")
    if tmp.exists():
        shutil.rmtree(tmp)
    first = True
    for step in steps:
        if first:
            step.to_zarr(tmp, mode="w", zarr_format=2, consolidated=False, encoding=_encoding(step, init_iso))
            first = False
        else:
            step.to_zarr(tmp, append_dim="time", zarr_format=2, consolidated=False)
    zarr.consolidate_metadata(str(tmp))
    if path.exists():
        shutil.rmtree(path)
    tmp.rename(path)


def store_files(path: Path) -> dict[str, bytes]:
    """Every file of a store by relative path ("/" separators), manifest files excluded."""
    files = {}
    for file in sorted(p for p in path.rglob("*") if p.is_file()):
        rel = file.relative_to(path).as_posix()
        if rel not in (MANIFEST_FILE, SIGNATURE_FILE):
            files[rel] = file.read_bytes()
    return files


def write_manifest(path: Path, keypair) -> str:  # noqa: ANN001
    """Write manifest.json and manifest.sig for a finished store; returns the verification hash."""
    manifest = build_manifest(store_files(path), keypair.ss58_address)
    (path / MANIFEST_FILE).write_bytes(manifest)
    (path / SIGNATURE_FILE).write_text(sign_manifest(keypair, manifest))
    return verification_hash(manifest)

"""Reading Zarr stores a (lat, lon) plane at a time, straight from the chunk files.

One rule for every reader of planes: the forecast ``gaia-dagster score`` is given, the verified
mirror of a miner's store the scoring stages read, and the data cache's entries
(``resources.cache.EntryPlanes``). A plane that is exactly one chunk of an array stored in C order,
whose stored values are what xarray would give (nothing to decode), is read from its chunk file and
decoded into a buffer of exactly its declared size (``core.store_limits.decode_chunk``, the bounded
reader's rule): one file read and one decode a plane, no xarray or zarr indexing. Any other plane is
read through zarr or xarray (``FieldReader``). Nothing here imports Dagster.
"""

from __future__ import annotations

import json
import os
import threading
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Mapping

import numpy as np
import xarray as xr

from gaia_dagster.core.store_limits import ArraySpec, StoreRefused, decode_chunk, describe_store

if TYPE_CHECKING:
    from gaia_dagster.resources.store_reader import BoundedStore

NETCDF_SUFFIXES = (".nc", ".nc4", ".netcdf")
ROOT_METADATA_FILES = (".zmetadata", "zarr.json")


def plane_arrays(metadata: Mapping[str, bytes]) -> dict[str, ArraySpec]:
    """The arrays a store's root metadata (``.zmetadata`` or ``zarr.json``, consolidated) declares
    whose chunks are stored in C order (empty when it declares none it can describe)."""
    try:
        arrays = describe_store(metadata) if metadata else {}
    except StoreRefused:
        return {}
    if ".zmetadata" in metadata:   # Zarr v2 may store a chunk in Fortran order
        declared = json.loads(metadata[".zmetadata"]).get("metadata", {})
        arrays = {n: a for n, a in arrays.items() if declared.get(f"{n}/.zarray", {}).get("order", "C") == "C"}
    return arrays


def root_metadata(root: Path) -> dict[str, bytes]:
    """The consolidated root metadata files of a local Zarr directory, by name."""
    return {n: (root / n).read_bytes() for n in ROOT_METADATA_FILES if (root / n).is_file()}


def spec_fits(spec: ArraySpec | None, dims: tuple) -> bool:  # noqa: ANN001
    """A chunk of ``spec`` is exactly one (lat, lon) plane of an array with ``dims``."""
    return (spec is not None and spec.dims == tuple(dims) and spec.dims[-2:] == ("lat", "lon")
            and all(c == 1 for c in spec.chunks[:-2]) and spec.chunks[-2:] == spec.shape[-2:])


def read_chunk(root: Path, spec: ArraySpec, index: tuple[int, ...]) -> np.ndarray | None:
    """The chunk at grid ``index`` of an array, decoded from its file under ``root`` within its
    declared size (``decode_chunk``), in the chunk's shape; None when that chunk is not stored
    (zarr reads the fill value then)."""
    try:
        with open(os.path.join(root, spec.chunk_key(index)), "rb") as handle:
            data = handle.read()
    except (FileNotFoundError, IsADirectoryError):
        return None
    return decode_chunk(spec, data).view(spec.dtype).reshape(spec.chunks)


def chunk_plane(root: Path, spec: ArraySpec, leading: tuple[int, ...]) -> np.ndarray | None:
    """The plane at ``leading`` (an index per dimension before lat, lon) of an array whose chunks
    are whole planes (``spec_fits``), read by ``read_chunk``; None when it is not stored."""
    chunk = read_chunk(root, spec, (*leading, 0, 0))
    return None if chunk is None else chunk.reshape(spec.chunks[-2:])


class FieldReader:
    """Reads (lat, lon) planes by coordinate value (``plane``) or position (``plane_at``). For a
    variable that needs no decoding (no scale/offset, no fill value but NaN): a plane that is one
    chunk of a local Zarr directory with consolidated metadata is read from its chunk file and
    decoded directly (``chunk_plane``: the codec releases the GIL, so the read-ahead threads decode
    in parallel); otherwise straight from the Zarr array; otherwise through xarray. With ``store``
    (an untrusted forecast) every chunk is read through the bounded reader: a whole-plane chunk is
    decoded from the bytes it returned (``BoundedStore.decode``), and the chunks zarr or xarray will
    read for any other plane are read through it first (``BoundedStore.read``), each once. Without
    it, the directory's files are trusted as they are (an operator's store, or a mirror whose every
    file was verified as it was written)."""

    def __init__(self, ds: xr.Dataset, path: str, store: "BoundedStore | None" = None):
        self.ds, self.path, self.store = ds, path, store
        self.root = Path(path)
        self.chunked = plane_arrays(root_metadata(self.root) if store is None else store.root)
        self.checked: set[str] = set()
        self.lock = threading.Lock()
        self.index: dict[str, dict] = {}
        self.layouts: dict[str, tuple[tuple, bool, ArraySpec | None]] = {}
        for dim in ("time", "pressure_level", "dayofyear", "hour"):
            if dim in ds.coords:
                values = ds[dim].values.astype("datetime64[ns]") if dim == "time" else ds[dim].values.astype(int)
                self.index[dim] = {v.item() if dim != "time" else v: i for i, v in enumerate(values)}

    def plane(self, variable: str, **at) -> np.ndarray:  # noqa: ANN003
        """The plane of ``variable`` at the coordinate values ``at`` (e.g. ``time=``, ``pressure_level=``)."""
        return self.plane_at(variable, {d: self.index[d][at[d]] for d in self.ds[variable].dims if d in at})

    def plane_at(self, variable: str, positions: Mapping[str, int]) -> np.ndarray:
        """The plane of ``variable`` at ``positions`` (an index along each dimension but lat, lon)."""
        dims, raw, spec = self._layout(variable)
        where = tuple(positions[d] if d in positions else slice(None) for d in dims)
        if spec is not None and all(isinstance(i, int) for i in where[:-2]):
            decoded = self._whole_plane_chunk(spec, where[:-2])
            if decoded is not None:
                return decoded
        if self.store is not None:
            self._check_chunks(self.store.chunks_holding(variable, where))
        group = self.group if raw else None
        return np.asarray(group[variable][where] if group is not None else self.ds[variable][where].values)

    def _layout(self, variable: str) -> tuple[tuple, bool, ArraySpec | None]:
        """A variable's dimensions, whether its stored values are what xarray gives (nothing to
        decode), and its chunk layout when a chunk is a whole plane (``spec_fits``) and needs no
        decoding, else None: worked out once per variable, not per plane."""
        layout = self.layouts.get(variable)
        if layout is None:
            da = self.ds[variable]
            raw, spec = not _decoded(da.encoding), self.chunked.get(variable)
            layout = self.layouts[variable] = (tuple(da.dims), raw, spec if raw and spec_fits(spec, da.dims) else None)
        return layout

    def _whole_plane_chunk(self, spec: ArraySpec, leading: tuple[int, ...]) -> np.ndarray | None:
        """The chunk's plane, None when it is not stored (zarr then gives the fill value)."""
        if self.store is None:
            return chunk_plane(self.root, spec, leading)
        rel = spec.chunk_key((*leading, 0, 0))
        if rel not in self.store.kinds:
            return None
        return self.store.decode(rel).view(spec.dtype).reshape(spec.chunks[-2:])

    def _check_chunks(self, rels: list[str]) -> None:
        """Read-through rule: a chunk zarr or xarray is about to read is first read through the
        bounded reader (once, however many planes it holds, so the byte budget counts it once; under
        the lock, so that no thread reads a chunk another is still checking)."""
        with self.lock:
            for rel in rels:
                if rel not in self.checked:
                    self.store.read(rel)
                    self.checked.add(rel)

    @cached_property
    def group(self):  # noqa: ANN201
        """The Zarr group (opened when a plane first needs it), None for netCDF or when zarr cannot open it."""
        return _zarr_group(self.path)


def _decoded(encoding: dict) -> bool:
    """Whether xarray decodes the stored values: scale/offset, or a fill value other than NaN that it
    turns into NaN."""
    fills = [encoding[k] for k in ("_FillValue", "missing_value") if encoding.get(k) is not None]
    return bool({"scale_factor", "add_offset"} & set(encoding)) or any(not np.isnan(f) for f in np.ravel(fills))


def _zarr_group(path: str):  # noqa: ANN202
    if path.endswith(NETCDF_SUFFIXES):
        return None
    try:
        import zarr

        return zarr.open_group(path, mode="r")
    except Exception:  # noqa: BLE001 - fall back to xarray reads
        return None

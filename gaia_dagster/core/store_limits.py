"""A miner's forecast store, bounded by the data contract before anything is read (issue 10).

A store is untrusted bytes, correctly signed or not. Before the validator downloads a single data
chunk, the store's Zarr metadata (v2 ``.zmetadata`` or v3 ``zarr.json`` with consolidated
metadata) and its manifest must describe what the contract allows and nothing more:

- codecs and filters from an allowlist (``blosc``, ``zstd``, none; for Zarr v3 also ``bytes``):
  nothing that unpickles or runs code; no filters;
- dtypes: float32/float64 for data variables, plain numbers for coordinates (never ``object``);
- shapes equal to the contract grid (or the known 720-row / ascending-latitude variant,
  ``core.contract.lat_layout``) and chunks of one time step and one level with the whole lat/lon
  plane, so that a decoded chunk is at most one plane;
- a manifest listing at most ``max_store_files()`` files, each a metadata file or a chunk of a
  declared array (no junk);
- every chunk decodes to exactly its declared size, into a buffer of that size, so a compression
  bomb fails without allocating beyond it (``decode_chunk``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from itertools import product
from typing import Any, Mapping

import numpy as np

from gaia_dagster.core.answers import AnswerRejected, parse_json_object
from gaia_dagster.core.contract import (
    ALL_VARIABLES, LEVEL_VARIABLES, N_STEPS, PRESSURE_LEVELS, SURFACE_VARIABLES, Grid, lat_row_counts,
    variable_dims,
)

CONTRACT_GRID = Grid()
COORDINATES = ("time", "pressure_level", "lat", "lon")
DATA_DTYPES = frozenset({"float32", "float64"})
COORD_DTYPES = frozenset({"float32", "float64", "int32", "int64"})
BLOSC_CNAMES = frozenset({"zstd", "lz4", "lz4hc", "blosclz", "zlib"})
MAX_EXTRA_ARRAYS = 8
MAX_EXTRA_ARRAY_BYTES = 64 * 1024
"""An array the contract does not name (a scalar coordinate, bounds...) is tolerated, this small."""
MAX_COORD_CHUNKS = 64
MAX_METADATA_BYTES = 1024 * 1024
"""Largest metadata file (``.zmetadata``, ``zarr.json``, ``.zarray``...) read; real ones are ~10 KB."""
MAX_MANIFEST_BYTES = 2 * 1024 * 1024
"""Largest ``manifest.json`` read; the contract's ~2,800 files take ~400 KB indented."""
MAX_SIGNATURE_BYTES = 1024
EXTRA_FILES = 256
"""Files beyond the data chunks a store may list: coordinate chunks, metadata, small extra arrays."""
ROOT_METADATA = (".zmetadata", ".zgroup", ".zattrs", "zarr.json")
ARRAY_METADATA = (".zarray", ".zattrs", "zarr.json")


class StoreRefused(ValueError):
    """The store breaks a limit of the contract; the message says which and where."""


@dataclass(frozen=True)
class ArraySpec:
    """One array of a store as its metadata declares it (Zarr v2 or v3, normalised)."""

    name: str
    dims: tuple[str, ...]
    shape: tuple[int, ...]
    chunks: tuple[int, ...]
    dtype: np.dtype
    codec: tuple[str, dict] | None   # (id, configuration) of the one compressor, None = raw bytes
    separator: str
    key_prefix: str                  # "" (v2, v3 "v2" encoding) or "c" (v3 default encoding)

    @property
    def chunk_nbytes(self) -> int:
        """Decoded bytes of one chunk (its declared shape times the item size)."""
        return math.prod(self.chunks) * self.dtype.itemsize

    @property
    def grid_counts(self) -> tuple[int, ...]:
        return tuple(-(-s // c) for s, c in zip(self.shape, self.chunks))

    @property
    def n_chunks(self) -> int:
        return math.prod(self.grid_counts)

    def chunk_key(self, index: tuple[int, ...]) -> str:
        """The store path of the chunk at grid ``index``."""
        parts = ([self.key_prefix] if self.key_prefix else []) + [str(i) for i in index]
        if not index and not self.key_prefix:
            parts = ["0"]
        return f"{self.name}/{self.separator.join(parts)}"

    def chunk_keys(self) -> dict[str, tuple[int, ...]]:
        """Every chunk path of the array and its grid index."""
        return {self.chunk_key(i): i for i in product(*(range(n) for n in self.grid_counts))}


MAX_CHUNK_BYTES = CONTRACT_GRID.lat.size * CONTRACT_GRID.lon.size * 8
"""Largest decoded chunk read from any store: one (lat, lon) plane of the 0.25 degree grid in float64."""


def check_bounds(arrays: Mapping[str, ArraySpec]) -> None:
    """Reading rule for every store, a miner's and one given to ``gaia-dagster score`` alike: codecs
    from the allowlist, no decoded chunk beyond ``MAX_CHUNK_BYTES``, at most ``max_store_files()``
    chunks in all (the contract's layout, ``check_arrays``, is for miners' stores only)."""
    total = 0
    for name, spec in arrays.items():
        _check_codec(spec)
        if spec.chunk_nbytes > MAX_CHUNK_BYTES:
            raise StoreRefused(f"array {name} has chunks {spec.chunks} of {spec.chunk_nbytes} bytes decoded "
                               f"(at most {MAX_CHUNK_BYTES}, one 0.25 degree plane in float64)")
        total += spec.n_chunks
        if total > max_store_files():
            raise StoreRefused(f"the store declares more than {max_store_files()} chunks (array {name} has "
                               f"{spec.n_chunks})")


def max_store_files() -> int:
    """Manifest rule: the most files a contract store can hold (the data chunks of every variable
    at one time step and one level per chunk, plus ``EXTRA_FILES``)."""
    data = N_STEPS * (len(SURFACE_VARIABLES) + len(LEVEL_VARIABLES) * len(PRESSURE_LEVELS))
    return data + EXTRA_FILES


def check_manifest_size(files: Mapping[str, Any]) -> None:
    """A manifest listing more files than the contract allows is refused before any is fetched."""
    if len(files) > max_store_files():
        raise StoreRefused(f"manifest lists {len(files)} files, the contract allows at most {max_store_files()}")


def parse_metadata_json(body: bytes, name: str) -> dict:
    """A metadata file: at most ``MAX_METADATA_BYTES``, UTF-8, shallow, a JSON object."""
    if len(body) > MAX_METADATA_BYTES:
        raise StoreRefused(f"{name} is {len(body)} bytes (at most {MAX_METADATA_BYTES})")
    try:
        return parse_json_object(body, max_depth=16)
    except AnswerRejected as exc:
        raise StoreRefused(f"{name}: {exc}") from None


# -- reading the metadata ----------------------------------------------------------------------
def _v2_codec(name: str, meta: dict) -> tuple[str, dict] | None:
    if meta.get("filters"):
        ids = [f.get("id") if isinstance(f, dict) else f for f in meta["filters"]]
        raise StoreRefused(f"array {name} uses filters {ids!r}, not allowed")
    compressor = meta.get("compressor")
    if compressor is None:
        return None
    if not isinstance(compressor, dict):
        raise StoreRefused(f"array {name} has a compressor that is not a codec description")
    return str(compressor.get("id")), compressor


def _v3_codec(name: str, meta: dict) -> tuple[str, dict] | None:
    codecs = meta.get("codecs")
    if not isinstance(codecs, list) or not codecs:
        raise StoreRefused(f"array {name} declares no codecs")
    names = [c.get("name") if isinstance(c, dict) else c for c in codecs]
    if names[0] != "bytes" or len(codecs) > 2:
        raise StoreRefused(f"array {name} uses codecs {names!r}, not allowed (bytes, then blosc or zstd)")
    endian = (codecs[0].get("configuration") or {}).get("endian", "little")
    if endian != "little":
        raise StoreRefused(f"array {name} is {endian}-endian, not allowed")
    if len(codecs) == 1:
        return None
    return str(names[1]), dict(codecs[1].get("configuration") or {})


def _dtype(name: str, declared: Any) -> np.dtype:
    """The array's dtype, only if it is a plain number (never object, structured or string)."""
    if not isinstance(declared, str):
        raise StoreRefused(f"array {name} has dtype {str(declared)[:60]!r}, not allowed")
    try:
        dtype = np.dtype(declared)
    except TypeError:
        raise StoreRefused(f"array {name} has dtype {declared[:60]!r}, not allowed") from None
    if dtype.kind not in "fi" or dtype.hasobject:
        raise StoreRefused(f"array {name} has dtype {declared[:60]!r}, not allowed")
    return dtype


def _ints(name: str, what: str, value: Any) -> tuple[int, ...]:
    if not isinstance(value, list) or not all(isinstance(v, int) and v > 0 for v in value) or len(value) > 8:
        raise StoreRefused(f"array {name} has an invalid {what} {str(value)[:80]}")
    return tuple(value)


def _v2_array(name: str, meta: dict, attrs: dict) -> ArraySpec:
    if meta.get("zarr_format") != 2:
        raise StoreRefused(f"array {name} is not Zarr v2 (zarr_format {meta.get('zarr_format')!r})")
    shape = _ints(name, "shape", meta.get("shape")) if meta.get("shape") != [] else ()
    chunks = _ints(name, "chunk shape", meta.get("chunks")) if shape else ()
    separator = meta.get("dimension_separator") or "."
    if separator not in (".", "/"):
        raise StoreRefused(f"array {name} has dimension separator {str(separator)[:10]!r}")
    dims = attrs.get("_ARRAY_DIMENSIONS", [])
    return ArraySpec(name, tuple(str(d) for d in dims), shape, chunks, _dtype(name, meta.get("dtype")),
                     _v2_codec(name, meta), separator, "")


def _v3_array(name: str, meta: dict) -> ArraySpec:
    if meta.get("node_type") != "array":
        raise StoreRefused(f"{name} is not an array")
    shape = _ints(name, "shape", meta.get("shape")) if meta.get("shape") != [] else ()
    grid = meta.get("chunk_grid") or {}
    chunks = _ints(name, "chunk shape", (grid.get("configuration") or {}).get("chunk_shape")) if shape else ()
    if grid.get("name") != "regular":
        raise StoreRefused(f"array {name} has chunk grid {str(grid.get('name'))[:40]!r}, not allowed")
    encoding = meta.get("chunk_key_encoding") or {}
    separator = (encoding.get("configuration") or {}).get("separator", "/" if encoding.get("name") == "default" else ".")
    if encoding.get("name") not in ("default", "v2") or separator not in (".", "/"):
        raise StoreRefused(f"array {name} has chunk key encoding {str(encoding)[:80]}")
    prefix = "c" if encoding.get("name") == "default" else ""
    dims = meta.get("dimension_names") or []
    return ArraySpec(name, tuple(str(d) for d in dims), shape, chunks, _dtype(name, meta.get("data_type")),
                     _v3_codec(name, meta), separator, prefix)


def describe_store(root_metadata: Mapping[str, bytes]) -> dict[str, ArraySpec]:
    """The store's arrays from its consolidated metadata: ``.zmetadata`` (Zarr v2) or the root
    ``zarr.json``'s ``consolidated_metadata`` (Zarr v3). Refused when neither is there."""
    if ".zmetadata" in root_metadata:
        meta = parse_metadata_json(root_metadata[".zmetadata"], ".zmetadata").get("metadata")
        if not isinstance(meta, dict):
            raise StoreRefused(".zmetadata has no 'metadata' table")
        return {key[: -len("/.zarray")]: _v2_array(key[: -len("/.zarray")], value,
                                                   meta.get(key[: -len(".zarray")] + ".zattrs") or {})
                for key, value in meta.items() if key.endswith("/.zarray") and isinstance(value, dict)}
    if "zarr.json" in root_metadata:
        root = parse_metadata_json(root_metadata["zarr.json"], "zarr.json")
        consolidated = (root.get("consolidated_metadata") or {}).get("metadata")
        if not isinstance(consolidated, dict):
            raise StoreRefused("zarr.json has no consolidated metadata")
        return {name: _v3_array(name, value) for name, value in consolidated.items()
                if isinstance(value, dict) and value.get("node_type") == "array"}
    raise StoreRefused("the store has no consolidated metadata (.zmetadata or zarr.json)")


# -- the contract's bounds -----------------------------------------------------------------------
def _check_codec(spec: ArraySpec) -> None:
    """Codec rule: blosc (a known inner compressor), zstd, or none; anything else is refused."""
    if spec.codec is None:
        return
    codec_id, config = spec.codec
    if codec_id == "blosc":
        if config.get("cname") not in BLOSC_CNAMES:
            raise StoreRefused(f"array {spec.name} uses blosc with {str(config.get('cname'))[:20]!r}, not allowed")
    elif codec_id != "zstd":
        raise StoreRefused(f"array {spec.name} uses codec {codec_id[:40]!r}, not allowed")


def _check_data_variable(spec: ArraySpec, lat_rows: tuple[int, ...], n_lon: int) -> None:
    """A data variable: its dims, float32/64, the contract's shape, one time step and level per chunk."""
    dims = variable_dims(spec.name)
    if spec.dims != dims:
        raise StoreRefused(f"array {spec.name} has dims {spec.dims}, expected {dims}")
    if spec.dtype.name not in DATA_DTYPES:
        raise StoreRefused(f"array {spec.name} has dtype {spec.dtype.name}, expected float32 or float64")
    levels = (len(PRESSURE_LEVELS),) if "pressure_level" in dims else ()
    lat = spec.shape[-2] if len(spec.shape) == len(dims) else -1
    expected = (N_STEPS, *levels, lat if lat in lat_rows else lat_rows[0], n_lon)
    if spec.shape != expected:
        raise StoreRefused(f"array {spec.name} has shape {spec.shape}, expected {expected}")
    chunks = (1, *(1 for _ in levels), expected[-2], n_lon)
    if spec.chunks != chunks:
        raise StoreRefused(f"array {spec.name} has chunks {spec.chunks}, expected {chunks} "
                           "(one time step and level, the whole lat/lon plane)")


def _check_coordinate(spec: ArraySpec, lat_rows: tuple[int, ...], n_lon: int) -> None:
    """A coordinate: one dim of its own name, a plain number dtype, the contract's length."""
    sizes = {"time": (N_STEPS,), "pressure_level": (len(PRESSURE_LEVELS),), "lat": lat_rows, "lon": (n_lon,)}
    if spec.dims != (spec.name,) or len(spec.shape) != 1 or spec.shape[0] not in sizes[spec.name]:
        raise StoreRefused(f"coordinate {spec.name} has dims {spec.dims} and shape {spec.shape}, expected "
                           f"({spec.name},) of length {' or '.join(map(str, sizes[spec.name]))}")
    if spec.dtype.name not in COORD_DTYPES:
        raise StoreRefused(f"coordinate {spec.name} has dtype {spec.dtype.name}, not allowed")
    if spec.n_chunks > MAX_COORD_CHUNKS:
        raise StoreRefused(f"coordinate {spec.name} is split into {spec.n_chunks} chunks (at most {MAX_COORD_CHUNKS})")


def _plane(arrays: Mapping[str, ArraySpec], grid: Grid | None) -> tuple[tuple[int, ...], int]:
    """(allowed lat row counts, lon count): ``grid``'s; without one, the store's own lat/lon lengths,
    at most the 0.25 degree contract grid's."""
    if grid is not None:
        return lat_row_counts(grid), grid.lon.size
    sizes = []
    for name, most in (("lat", CONTRACT_GRID.lat.size), ("lon", CONTRACT_GRID.lon.size)):
        shape = arrays[name].shape if name in arrays else ()
        if len(shape) != 1 or shape[0] > most:
            raise StoreRefused(f"coordinate {name} has shape {shape}, expected at most ({most},)")
        sizes.append(shape[0])
    return (sizes[0],), sizes[1]


def check_arrays(arrays: Mapping[str, ArraySpec], grid: Grid | None = None) -> None:
    """Every array bounded by the contract (module docstring). With ``grid`` the shapes must be that
    grid's (or its 720-row variant); without, the store's own lat/lon, within the 0.25 degree grid."""
    lat_rows, n_lon = _plane(arrays, grid)
    extras = [name for name in arrays if name not in ALL_VARIABLES and name not in COORDINATES]
    if len(extras) > MAX_EXTRA_ARRAYS:
        raise StoreRefused(f"the store declares {len(extras)} arrays outside the contract "
                           f"(at most {MAX_EXTRA_ARRAYS}): {extras[:5]}")
    for name, spec in arrays.items():
        if any(c > s for c, s in zip(spec.chunks, spec.shape)):
            raise StoreRefused(f"array {name} has chunks {spec.chunks} larger than its shape {spec.shape}")
        _check_codec(spec)
        if name in ALL_VARIABLES:
            _check_data_variable(spec, lat_rows, n_lon)
        elif name in COORDINATES:
            _check_coordinate(spec, lat_rows, n_lon)
        elif math.prod(spec.shape) * spec.dtype.itemsize > MAX_EXTRA_ARRAY_BYTES:
            raise StoreRefused(f"array {name} is not in the contract and holds {spec.shape} values "
                               f"(at most {MAX_EXTRA_ARRAY_BYTES} bytes)")


def classify_files(files: Mapping[str, Any], arrays: Mapping[str, ArraySpec]) -> dict[str, ArraySpec | None]:
    """Manifest rule: every listed file is a metadata file (None) or a chunk of a declared array (its
    spec); a file that is neither is junk and refuses the store, naming it."""
    keys = {key: spec for spec in arrays.values() for key in spec.chunk_keys()}
    kinds: dict[str, ArraySpec | None] = {}
    junk = []
    for rel in files:
        head, _, base = rel.rpartition("/")
        if rel in keys:
            kinds[rel] = keys[rel]
        elif (not head and base in ROOT_METADATA) or (head in arrays and base in ARRAY_METADATA):
            kinds[rel] = None
        else:
            junk.append(rel)
    if junk:
        raise StoreRefused(f"manifest lists {len(junk)} files that are neither metadata nor a chunk of a "
                           f"declared array, e.g. {sorted(junk)[:3]}")
    return kinds


# -- decoding a chunk within its declared size -----------------------------------------------------
def compressed_cap(spec: ArraySpec) -> int:
    """Largest compressed chunk accepted: its decoded size plus the codecs' worst-case overhead."""
    return spec.chunk_nbytes + spec.chunk_nbytes // 64 + 4096


ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"


def zstd_content_size(data: bytes) -> int | None:
    """The decoded size a zstd frame declares in its header (RFC 8878 3.1.1.1), None when absent."""
    if len(data) < 6 or data[:4] != ZSTD_MAGIC:
        return None
    descriptor = data[4]
    single_segment = (descriptor >> 5) & 1
    position = 5 + (0 if single_segment else 1) + (0, 1, 2, 4)[descriptor & 3]
    size = (1 if single_segment else 0, 2, 4, 8)[descriptor >> 6]
    if size == 0 or len(data) < position + size:
        return None
    value = int.from_bytes(data[position:position + size], "little")
    return value + 256 if size == 2 else value


def check_chunk(spec: ArraySpec, data: bytes) -> None:
    """A chunk that cannot expand beyond its declared size, checked as cheaply as that can be known:
    uncompressed, its length; blosc, its header (blosc never writes past the ``nbytes`` its header
    declares, and that must be the chunk's size); zstd, by decoding it into a buffer of exactly its
    size (``decode_chunk``), since a zstd chunk may hold frames after the one its header describes."""
    codec_id = spec.codec[0] if spec.codec else None
    if codec_id is None:
        if len(data) != spec.chunk_nbytes:
            raise StoreRefused(f"chunk holds {len(data)} bytes, its shape needs {spec.chunk_nbytes}")
    elif codec_id == "blosc":
        declared = int.from_bytes(data[4:8], "little") if len(data) >= 16 else -1
        if declared != spec.chunk_nbytes or int.from_bytes(data[12:16], "little") != len(data):
            raise StoreRefused(f"blosc chunk declares {declared} bytes (its shape needs {spec.chunk_nbytes}) "
                               f"or a compressed size other than its {len(data)} bytes")
    else:
        decode_chunk(spec, data)


def decode_chunk(spec: ArraySpec, data: bytes) -> np.ndarray:
    """Decode one chunk into a buffer of exactly its declared size (``chunk_nbytes``): a chunk that
    would expand beyond it (a compression bomb) or fall short is refused without allocating more."""
    import numcodecs.blosc
    import numcodecs.zstd

    expected = spec.chunk_nbytes
    out = np.empty(expected, dtype=np.uint8)
    codec_id = spec.codec[0] if spec.codec else None
    try:
        if codec_id is None:
            if len(data) != expected:
                raise StoreRefused(f"chunk holds {len(data)} bytes, its shape needs {expected}")
            out[:] = np.frombuffer(data, dtype=np.uint8)
        elif codec_id == "blosc":
            declared = int.from_bytes(data[4:8], "little") if len(data) >= 16 else -1
            if declared != expected or int.from_bytes(data[12:16], "little") != len(data):
                raise StoreRefused(f"blosc chunk declares {declared} bytes (its shape needs {expected}) "
                                   f"or a compressed size other than its {len(data)} bytes")
            numcodecs.blosc.decompress(data, out)
        else:
            declared = zstd_content_size(data)
            if declared != expected:
                raise StoreRefused(f"zstd chunk declares {declared} bytes, its shape needs {expected}")
            numcodecs.zstd.decompress(data, out)
    except StoreRefused:
        raise
    except (ValueError, RuntimeError) as exc:
        raise StoreRefused(f"chunk does not decode to its declared {expected} bytes: {str(exc)[:200]}") from None
    return out

"""On-disk cache entries that stay correct when several processes fill and read them at once.

The one rule every cache of this package follows (GFS GRIB files and datasets, the per-variable
ERA5 and climatology entries):

1. Build aside: a writer builds an entry under a temporary name unique to it
   (``.{name}.{host}.{pid}.{random}.tmp`` beside the entry), never under a shared name.
2. One writer at a time: building and publishing happen under an exclusive ``fcntl.flock`` on
   ``{name}.lock`` beside the entry; a process that waited for the lock looks again first and
   uses what the writer before it published.
3. Publish atomically: the temporary entry is renamed into place (first writer wins: if an entry
   appeared there meanwhile, the temporary copy is discarded), then its completeness marker
   ``{name}.complete`` (the size and SHA-256 digest of every file, and what the entry holds) is
   renamed beside it.
4. Verify on read: an entry is used only when its marker is there, every file has the recorded size
   and digest (a flipped byte is caught, logged, and the entry fetched again) and the reader finds
   what the marker lists (every variable, every chunk decodable). Anything else is discarded and
   rebuilt, never trusted.
5. Read under a shared lock: a reader holds a shared ``flock`` on the entry's lock while it reads,
   so a writer or the evictor (``cache_bound.py``: least recently used first, the cache kept under
   ``GAIA_CACHE_MAX_GB``) never removes an entry under a reader. Each read touches the marker: its
   modification time is the entry's last use. A reader that reads an entry bit by bit (one plane
   at a time, ``held_entries``) holds that lock from the check to its last read.

Dataset entries are Zarr, one (lat, lon) plane a chunk, so a reader of one (variable, level)
decodes that plane only, straight from its chunk file (``EntryPlanes``).

Locks are advisory and Linux-only (a local or flock-honouring filesystem). Lock files stay in
place: removing one could let two writers each hold "the" lock.

Forecast mirrors follow the same idea with ``private_dir``: each fetch gets its own folder, held by
a lock while in use, removed when released; folders whose writer is gone are swept.
"""

from __future__ import annotations

import fcntl
import glob
import hashlib
import json
import logging
import os
import shutil
import socket
import uuid
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Callable, Hashable, Iterator, Mapping, Sequence, TypeVar

import numpy as np
import xarray as xr

from gaia_dagster.core.store_limits import ArraySpec, decode_chunk, describe_store
from gaia_dagster.resources.zarr_planes import read_chunk, spec_fits

log = logging.getLogger(__name__)

T = TypeVar("T")
K = TypeVar("K", bound=Hashable)
# Writes the entry at the temporary path it is given; returns what the marker records besides sizes.
Build = Callable[[Path], Mapping]
# Reads a complete entry (path, marker); raises when the entry is not what the marker says.
Load = Callable[[Path, Mapping], T]

MIRROR_STEM = "mirror"


class IncompleteEntry(LookupError):
    """A cache entry that is missing, has no valid completeness marker, or does not read as it says."""


def lock_path(path: Path) -> Path:
    """Rule: an entry's lock file sits beside it, ``{name}.lock``."""
    return path.with_name(path.name + ".lock")


def marker_path(path: Path) -> Path:
    """Rule: an entry's completeness marker sits beside it, ``{name}.complete``."""
    return path.with_name(path.name + ".complete")


def unique_name(stem: str, suffix: str = ".tmp") -> str:
    """Rule: a name no other writer uses (hidden): host, process id and a random part."""
    return f".{stem}.{socket.gethostname()}.{os.getpid()}.{uuid.uuid4().hex[:12]}{suffix}"


def acquire(lock: Path, wait: bool = True, shared: bool = False) -> int | None:
    """Rule: an exclusive (or ``shared``) ``flock`` on ``lock`` (created if needed); the open
    descriptor holds it until closed. Without ``wait``, None when another holder has it."""
    lock.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        mode = fcntl.LOCK_SH if shared else fcntl.LOCK_EX
        fcntl.flock(fd, mode if wait else mode | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        return None
    except BaseException:
        os.close(fd)
        raise
    return fd


@contextmanager
def entry_locks(paths: Sequence[Path]) -> Iterator[None]:
    """Rule: hold the locks of several entries, taken in sorted order so two holders never deadlock."""
    with ExitStack() as stack:
        for path in sorted(set(paths)):
            stack.callback(os.close, acquire(lock_path(path)))
        yield


def entry_files(path: Path) -> list[tuple[str, str]]:
    """Every regular file of an entry (symbolic links to directories not followed) as (name
    relative to it, path), by name; a single file is ``"."``, a missing entry has none."""
    if path.is_file():
        return [(".", str(path))]
    if not path.is_dir():
        return []
    found, pending = [], [(str(path), "")]
    while pending:
        folder, prefix = pending.pop()
        with os.scandir(folder) as entries:
            for entry in entries:
                if entry.is_dir(follow_symlinks=False):
                    pending.append((entry.path, f"{prefix}{entry.name}/"))
                elif entry.is_file():
                    found.append((prefix + entry.name, entry.path))
    return sorted(found)


KEPT_FILE_BYTES = 64 * 1024
"""A file of an entry up to this size is kept as the digest check read it, for the loader (``read_entry``)."""


def fingerprint(path: Path, files: Sequence[tuple[str, str]] | None = None) -> dict[str, int]:
    """Rule: an entry's fingerprint is the size of each of its files (a single file is ``"."``);
    ``files``: its ``entry_files`` when already listed."""
    return {name: os.stat(file).st_size for name, file in (entry_files(path) if files is None else files)}


def digests(path: Path, files: Sequence[tuple[str, str]] | None = None,
            kept: dict[str, bytes] | None = None) -> dict[str, str]:
    """Rule: an entry's digests are the SHA-256 of each of its files (a single file is ``"."``);
    ``files``: its ``entry_files`` when already listed; ``kept`` receives the bytes of every file of
    at most ``KEPT_FILE_BYTES``, exactly those the digest was taken of."""
    out = {}
    for name, file in entry_files(path) if files is None else files:
        digest = hashlib.sha256()
        with open(file, "rb") as handle:
            head = handle.read(KEPT_FILE_BYTES + 1)
            digest.update(head)
            if kept is not None and len(head) <= KEPT_FILE_BYTES:
                kept[name] = head
            while chunk := handle.read(1 << 20):
                digest.update(chunk)
        out[name] = digest.hexdigest()
    return out


def digest_problem(path: Path, marker: Mapping, files: Sequence[tuple[str, str]] | None = None,
                   kept: dict[str, bytes] | None = None) -> str | None:
    """Rule (digest check on every read): every file's SHA-256 equals its marker's; the first that
    does not is named (a marker without digests is never trusted). ``files``, ``kept``: see ``digests``."""
    want = marker.get("sha256")
    if not isinstance(want, dict):
        return "its marker records no digests"
    got = digests(path, files, kept)
    for name in sorted(set(want) | set(got)):
        if want.get(name) != got.get(name):
            return f"file {name} fails its sha256 check"
    return None


def complete_marker(path: Path, files: Sequence[tuple[str, str]] | None = None) -> dict | None:
    """Rule: an entry is complete when its marker is readable and every file has the size it records
    (no file missing, truncated or added); its marker then, else None. ``files``: its
    ``entry_files`` when already listed."""
    try:
        marker = json.loads(marker_path(path).read_text())
        return marker if path.exists() and fingerprint(path, files) == marker.get("files") else None
    except (OSError, ValueError, AttributeError):
        return None


@contextmanager
def reading(path: Path, locked: bool = False) -> Iterator[None]:
    """Rule (never evicted under a reader): hold the entry's lock shared while reading it, unless
    this process already holds it exclusively (``locked``)."""
    if locked:
        yield
        return
    fd = acquire(lock_path(path), shared=True)
    try:
        yield
    finally:
        os.close(fd)


def read_entry(path: Path, load: Load[T], locked: bool = False) -> T:
    """Rule (verify on read): under the entry's shared lock, check it against its marker (sizes,
    then every file's digest) and load it; IncompleteEntry when it is missing, unmarked, corrupt or
    unreadable as marked. A good read marks the entry as just used (the marker's mtime). A loader
    that takes ``kept_files`` is handed the small files' bytes the digest check read (see
    ``digests``), so it reads them from what was checked instead of from disk again."""
    with reading(path, locked):
        files = entry_files(path)
        marker = complete_marker(path, files)
        if marker is None:
            raise IncompleteEntry(f"cache entry {path} is missing or incomplete "
                                  f"(no matching {marker_path(path).name})")
        kept: dict[str, bytes] | None = {} if getattr(load, "takes_kept_files", False) else None
        problem = digest_problem(path, marker, files, kept)
        if problem:
            raise IncompleteEntry(f"cache entry {path} is corrupt: {problem}")
        try:
            value = load(path, marker) if kept is None else load(path, marker, kept_files=kept)
        except Exception as exc:  # noqa: BLE001 - anything unreadable is incomplete, never trusted
            raise IncompleteEntry(f"cache entry {path} is unreadable: {exc!r}") from exc
        touch(path)
        return value


def touch(path: Path) -> None:
    """Rule (LRU): an entry's last use is its marker's modification time."""
    try:
        os.utime(marker_path(path))
    except OSError:
        pass


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)


def discard(path: Path) -> None:
    """Rule: drop an entry marker first (it stops looking complete at once), then the entry, moved
    aside under a unique name before it is deleted. Call with the entry's lock held."""
    marker_path(path).unlink(missing_ok=True)
    trash = path.with_name(unique_name(path.name))
    try:
        os.rename(path, trash)
    except FileNotFoundError:
        return
    _remove(trash)


def publish(tmp: Path, path: Path, marker: Mapping) -> bool:
    """Rule: rename the built entry into place atomically, first writer wins (False, and ``tmp`` left
    to the caller, when an entry is already there); then write the marker, also by rename."""
    if path.exists():
        return False
    try:
        os.rename(tmp, path)  # a directory never replaces a non-empty one
    except OSError:
        if path.exists():
            return False
        raise
    marker_tmp = path.with_name(unique_name(marker_path(path).name))
    marker_tmp.write_text(json.dumps(dict(marker), sort_keys=True))
    os.replace(marker_tmp, marker_path(path))
    return True


def _write_locked(path: Path, build: Build) -> None:
    """Build at a unique temporary path and publish it in place of whatever is there (lock held).
    Temporaries of this entry left by a writer that died are swept first: none can be live."""
    for leftover in path.parent.glob(f".{glob.escape(path.name)}.*.tmp"):
        _remove(leftover)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(unique_name(path.name))
    try:
        info = dict(build(tmp) or {})
        marker = {**info, "files": fingerprint(tmp), "sha256": digests(tmp)}
        discard(path)
        publish(tmp, path, marker)
    finally:
        if tmp.exists():
            _remove(tmp)
    from gaia_dagster.resources.cache_bound import enforce_bound

    enforce_bound(path)


def write_entry(path: Path, build: Build) -> Path:
    """Rule: (re)write an entry under its lock: unique temporary, atomic rename, marker."""
    with entry_locks([path]):
        _write_locked(path, build)
    return path


_MISSING = object()


def _attempt(path: Path, load: Load[T], locked: bool = False) -> object:
    """The loaded entry, or _MISSING when it is missing or incomplete (logged when it is rebuilt:
    a corrupt entry is refetched)."""
    try:
        return read_entry(path, load, locked)
    except IncompleteEntry as exc:
        if path.exists():
            log.warning("%s; rebuilding it unless another writer is completing it", exc)
        return _MISSING


def cached_entries(paths: Mapping[K, Path], produce: Callable[[list[K]], Mapping[K, Build]],
                   load: Load[T]) -> dict[K, T]:
    """Rule (fill once, verify on read) for entries produced together: complete entries are read
    without a lock; for the others every lock is taken, they are looked at again (another writer may
    have filled them meanwhile), and only those still incomplete are produced, in one call, written
    and read back."""
    found = {key: _attempt(path, load) for key, path in paths.items()}
    todo = [key for key, value in found.items() if value is _MISSING]
    if todo:
        with entry_locks([paths[key] for key in todo]):
            for key in todo:
                found[key] = _attempt(paths[key], load, locked=True)
            todo = [key for key in todo if found[key] is _MISSING]
            if todo:
                builders = produce(todo)
                for key in todo:
                    _write_locked(paths[key], builders[key])
                    found[key] = read_entry(paths[key], load, locked=True)
    return found  # type: ignore[return-value]


def cached_entry(path: Path, build: Build, load: Load[T]) -> T:
    """Rule (fill once, verify on read) for one entry: see ``cached_entries``."""
    return cached_entries({path: path}, lambda _: {path: build}, load)[path]


HOLD_ATTEMPTS = 3


def _closed(value: object) -> object:
    """What ``load`` opened, closed (a check that keeps nothing open)."""
    close = getattr(value, "close", None)
    if close is not None:
        close()
    return value


@contextmanager
def held_entries(paths: Mapping[K, Path], produce: Callable[[list[K]], Mapping[K, Build]],
                 load: Load[T]) -> Iterator[dict[K, T]]:
    """Rule (fill once, verify on read, never evicted under a reader) for entries read lazily, bit
    by bit, for as long as the block lasts: their locks are taken shared (in sorted order, as
    writers take theirs) and each entry is checked as ``read_entry`` checks it (marker, sizes,
    every file's digest) and opened by ``load``; they stay held, so neither a writer nor the evictor
    removes them, until the block ends (what ``load`` opened is closed then). Entries found
    missing or incomplete are let go, filled as ``cached_entries`` fills them, and all are held
    again; an entry evicted between its fill and its hold is filled again, up to HOLD_ATTEMPTS."""
    for _ in range(HOLD_ATTEMPTS):
        with ExitStack() as stack:
            for path in sorted(set(paths.values())):
                stack.callback(os.close, acquire(lock_path(path), shared=True))
            found = {key: _attempt(path, load, locked=True) for key, path in paths.items()}
            for value in found.values():
                if value is not _MISSING and hasattr(value, "close"):
                    stack.callback(value.close)
            missing = [key for key, value in found.items() if value is _MISSING]
            if not missing:
                yield found  # type: ignore[misc]
                return
        cached_entries({key: paths[key] for key in missing}, produce, lambda p, m: _closed(load(p, m)))
    raise IncompleteEntry(f"cache entries {sorted(map(str, paths.values()))} could not be held complete "
                          f"in {HOLD_ATTEMPTS} attempts (evicted as soon as filled: is the cache cap too small?)")


# -- Zarr datasets as entries -------------------------------------------------------------------
def plane_chunks(dataset: xr.Dataset) -> dict[str, dict]:
    """Rule (a plane a chunk): each variable is chunked one (lat, lon) plane at a time (its last two
    dimensions whole, 1 along the others)."""
    return {str(name): {"chunks": (1,) * max(var.ndim - 2, 0) + var.shape[-2:]}
            for name, var in dataset.data_vars.items() if var.ndim}


def zarr_entry(make: Callable[[], xr.Dataset]) -> Build:
    """Build step of a dataset entry: ``make()`` written as consolidated Zarr v2 (encodings dropped),
    a plane a chunk; the marker records its variables."""
    def build(tmp: Path) -> Mapping:
        dataset = make().drop_encoding()
        dataset.to_zarr(tmp, mode="w-", zarr_format=2, consolidated=True, encoding=plane_chunks(dataset))
        return {"variables": sorted(map(str, dataset.data_vars))}
    return build


DECODED_ATTRIBUTES = ("scale_factor", "add_offset", "_FillValue", "missing_value")
"""Attributes that make xarray change the stored values (none is in an entry ``zarr_entry`` writes)."""


class EntryPlanes:
    """Verify on read of a dataset entry read a (lat, lon) plane at a time (``held_entries``), each
    straight from its chunk file (``resources.zarr_planes``): no xarray per plane, nothing kept in
    memory but the coordinates and the small files the digest check read (``kept_files``: the
    metadata, the coordinates, and on a coarse grid the planes, decoded from the checked bytes
    rather than read again). Opening it checks that it is what ``zarr_entry`` wrote (the files'
    digests were checked first): consolidated Zarr v2 holding every variable of its marker, each
    on (lat, lon) or (pressure_level, lat, lon), in C order, one plane a chunk, NaN as fill value
    and no attribute xarray would decode, with single-valued levels; anything else raises (the entry
    is unreadable, so rebuilt). A plane whose chunk file is absent is all NaN (the fill value: the
    writer leaves such a chunk out), as xarray reads it."""

    takes_kept_files = True

    def __init__(self, path: Path, marker: Mapping, kept_files: Mapping[str, bytes] | None = None):
        self.path = path
        self.kept = kept_files or {}
        consolidated = self.kept.get(".zmetadata")
        if consolidated is None:
            consolidated = (path / ".zmetadata").read_bytes()
        self.arrays = describe_store({".zmetadata": consolidated})
        declared = json.loads(consolidated)["metadata"]
        for name in marker.get("variables", []):
            spec = self.arrays.get(name)
            if spec is None or spec.dims not in (("lat", "lon"), ("pressure_level", "lat", "lon")) \
                    or not spec_fits(spec, spec.dims) or not _as_stored(declared, name, ("NaN",)):
                raise KeyError(f"{path} does not hold {name} as a plane a chunk, as its marker lists it")
        self.lat, self.lon = self._coordinate(declared, "lat"), self._coordinate(declared, "lon")
        levels = self._coordinate(declared, "pressure_level") if "pressure_level" in self.arrays else ()
        self.levels = {int(v): i for i, v in enumerate(levels)}
        if len(self.levels) != len(levels):
            raise KeyError(f"{path} repeats a pressure level: {list(levels)}")

    def _chunk(self, spec: ArraySpec, index: tuple[int, ...]) -> np.ndarray | None:
        """The chunk at grid ``index`` (``read_chunk``), from the checked bytes when they were kept."""
        data = self.kept.get(spec.chunk_key(index))
        if data is None:
            return read_chunk(self.path, spec, index)
        return decode_chunk(spec, data).view(spec.dtype).reshape(spec.chunks)

    def _coordinate(self, declared: Mapping, name: str) -> np.ndarray:
        """A 1-D coordinate, its chunks decoded (``decode_chunk``) and joined."""
        spec = self.arrays.get(name)
        if spec is None or spec.dims != (name,) or not _as_stored(declared, name, ("NaN", None)):
            raise KeyError(f"{self.path} has no plain coordinate {name}")
        parts = [self._chunk(spec, (i,)) for i in range(spec.grid_counts[0])]
        if any(part is None for part in parts):
            raise KeyError(f"{self.path} lacks a chunk of its coordinate {name}")
        return np.concatenate(parts)[:spec.shape[0]]

    def plane(self, variable: str, level: int | None = None) -> np.ndarray:
        """The (lat, lon) plane of ``variable`` (at pressure ``level`` for a level variable)."""
        spec = self.arrays[variable]
        if (level is None) != (len(spec.dims) == 2):
            raise KeyError(f"{self.path}: {variable} is {'not ' if level is not None else ''}on pressure levels")
        chunk = self._chunk(spec, (*(() if level is None else (self.levels[level],)), 0, 0))
        return np.full(spec.chunks[-2:], np.nan, dtype=spec.dtype) if chunk is None else chunk.reshape(spec.chunks[-2:])


def _as_stored(declared: Mapping, name: str, fills: tuple) -> bool:
    """Whether xarray reads array ``name`` of a consolidated Zarr v2 store as its chunks store it:
    chunks in C order, its fill value one of ``fills`` and no attribute it decodes by."""
    meta = declared.get(f"{name}/.zarray") or {}
    attrs = declared.get(f"{name}/.zattrs") or {}
    return (meta.get("order", "C") == "C" and meta.get("fill_value") in fills
            and not any(a in attrs for a in DECODED_ATTRIBUTES))


def check_zarr(path: Path, marker: Mapping) -> Path:
    """Cheap verify of a dataset entry (no plane read): it holds every variable of its marker as
    ``zarr_entry`` writes it (``EntryPlanes``)."""
    EntryPlanes(path, marker)
    return path


# -- private folders (forecast mirrors) ----------------------------------------------------------
def sweep_abandoned(parent: Path, stem: str = MIRROR_STEM) -> None:
    """Rule: a private folder whose lock nobody holds belongs to a writer that is gone: remove it."""
    for folder in parent.glob(f".{glob.escape(stem)}.*.dir"):
        fd = acquire(lock_path(folder), wait=False)
        if fd is None:
            continue  # its writer still uses it
        try:
            _remove(folder)
            lock_path(folder).unlink(missing_ok=True)
        finally:
            os.close(fd)


def private_dir(parent: Path, stem: str = MIRROR_STEM) -> tuple[Path, Callable[[], None]]:
    """Rule (one folder per writer): a new folder under ``parent`` that only its writer uses, its
    lock held until ``release()`` removes it; abandoned folders are swept first."""
    parent.mkdir(parents=True, exist_ok=True)
    sweep_abandoned(parent, stem)
    folder = parent / unique_name(stem, ".dir")
    fd = acquire(lock_path(folder))
    folder.mkdir()

    held = [fd]

    def release() -> None:  # idempotent
        if held:
            try:
                _remove(folder)
                lock_path(folder).unlink(missing_ok=True)
            finally:
                os.close(held.pop())

    return folder, release

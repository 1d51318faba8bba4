"""One bounded reader for every forecast store (issue 18): a miner's store over HTTP (the pipeline,
``store_fetch``) and a store on disk given to ``gaia-dagster score`` are read through the same
``BoundedStore`` with the same limits (``FetchLimits`` and ``core.store_limits``):

- metadata: each file at most ``MAX_METADATA_BYTES``, consolidated, codecs and dtypes from the
  allowlist, no decoded chunk beyond one 0.25 degree plane, at most ``max_store_files()`` files and
  chunks, every listed file a metadata file or a chunk of a declared array;
- bytes: each chunk at most its decoded size plus the codec's overhead (``compressed_cap``), and
  the whole read within a byte budget (the caps of the files it needs);
- decompressed size: no chunk can expand beyond its declared size (``check_chunk``: a blosc
  header must declare exactly it, a zstd chunk is decoded into a buffer of that size), so a
  compression bomb is refused without allocating beyond it;
- time: the whole read within ``deadline_s``; in the fast lane (``RateFloor``) also no slower than
  the floor, or the read stops as ``SlowStore`` and the job is read again in the slow lane.

A miner's store must in addition follow the contract's layout (``check_arrays``); a store on disk
may be any layout within the limits. The pipeline reads the chunks it needs up front into a mirror
(``read``); ``gaia-dagster score`` opens the store (``open_local_store``) and reads each chunk it
scores when it scores it, once, decoded from the bytes the bounded read returned (``decode``).
Nothing here imports Dagster.
"""

from __future__ import annotations

import math
import os
import stat
import threading
import time
from dataclasses import dataclass
from itertools import product
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping

import numpy as np

from gaia_dagster.core.contract import Grid
from gaia_dagster.core.manifest import MANIFEST_FILE, SIGNATURE_FILE
from gaia_dagster.core.store_limits import (
    MAX_METADATA_BYTES, ROOT_METADATA, ArraySpec, StoreRefused, check_arrays, check_bounds, check_manifest_size,
    check_chunk, classify_files, compressed_cap, decode_chunk, describe_store, max_store_files,
)
from gaia_dagster.resources.miner_errors import SlowStore

STORE_DEADLINE_S = 600.0
"""Default wall time one read of one store may take (metadata and chunks)."""
MAX_DEPTH = 8
"""Deepest file path of a store on disk (v3 nested chunk keys are ``name/c/t/l/y/x``)."""


@dataclass(frozen=True)
class RateFloor:
    """The fast lane's floor (issue 18, run slots shared fairly): a read may take ``grace_s`` plus one
    second per ``bytes_per_s`` bytes it has read so far, each file it has asked for counting as at
    least ``MIN_FILE_CREDIT`` bytes (a store of many small chunks pays a request per file); a read
    that falls behind is slow."""

    grace_s: float
    bytes_per_s: float


MIN_FILE_CREDIT = 64 * 1024


@dataclass(frozen=True)
class FetchLimits:
    """Bounds of one read of one store: a wall-time deadline, a byte budget (None: the sum of the
    per-file caps for the files the read needs) and, in the fast lane, a ``RateFloor``."""

    deadline_s: float = STORE_DEADLINE_S
    max_bytes: int | None = None
    floor: RateFloor | None = None


class BoundedFiles:
    """Where a store's files come from, with the byte budget and deadline of one read. Subclasses
    implement ``get(rel, cap)`` (at most ``cap`` bytes, else ``StoreRefused``) and ``late()``."""

    def __init__(self, limits: FetchLimits, who: str):
        self.limits, self.who = limits, who
        self.started = time.monotonic()
        self.deadline = self.started + limits.deadline_s
        self.budget = limits.max_bytes
        self.spent = 0
        self.files_asked = 0
        self._lock = threading.Lock()

    def spend(self, n: int) -> None:
        """Count ``n`` bytes read; over the budget is the store's fault."""
        with self._lock:
            self.spent += n
            if self.budget is not None and self.spent > self.budget:
                raise StoreRefused(f"the store read exceeds its budget of {self.budget} bytes")

    def slow_at(self) -> float:
        """Rule (fast lane): when the read becomes slow unless more bytes arrive: its grace plus the
        time the bytes read so far allow at the floor's rate (never, without a floor)."""
        floor = self.limits.floor
        if floor is None:
            return math.inf
        return self.started + floor.grace_s + max(self.spent, self.files_asked * MIN_FILE_CREDIT) / floor.bytes_per_s

    def check_time(self) -> None:
        """The read's deadline (``late``), then the fast lane's floor (``slow``)."""
        now = time.monotonic()
        if now > self.deadline:
            raise self.late()
        if now > self.slow_at():
            raise self.slow()

    def late(self) -> Exception:
        return StoreRefused(f"the store read did not finish within its {self.limits.deadline_s:g} s deadline")

    def slow(self) -> SlowStore:
        """The fast lane's verdict: the store reads below the floor (not a fault: it is read again,
        in the slow lane, without the floor)."""
        floor = self.limits.floor
        return SlowStore(f"{self.who}: the store read too slowly for the fast lane ({self.spent} bytes in "
                         f"{time.monotonic() - self.started:.1f} s, under {floor.bytes_per_s:g} bytes/s after a "
                         f"{floor.grace_s:g} s grace); it is read again in the slow lane")

    def get(self, rel: str, cap: int) -> bytes:
        raise NotImplementedError


class LocalStoreFiles(BoundedFiles):
    """A store directory on disk: regular files only (a FIFO or device is refused before it is
    opened), never a path outside it, each read at most its cap."""

    def __init__(self, root: Path, limits: FetchLimits | None = None):
        super().__init__(limits or FetchLimits(), f"store {root}")
        self.root = root

    def get(self, rel: str, cap: int) -> bytes:
        self.check_time()
        if not is_safe_relpath(rel):
            raise StoreRefused(f"unsafe path {rel[:200]!r}")
        try:
            info = (self.root / rel).stat()
            if not stat.S_ISREG(info.st_mode):
                raise StoreRefused(f"{rel} is not a regular file")
            if info.st_size > cap:
                raise StoreRefused(f"{rel} is {info.st_size} bytes, more than the {cap} allowed for it")
            with open(self.root / rel, "rb") as handle:
                data = handle.read(cap + 1)
        except OSError as exc:
            raise StoreRefused(f"{rel} cannot be read: {exc.strerror or exc}") from None
        if len(data) > cap:
            raise StoreRefused(f"{rel} is more than the {cap} bytes allowed for it")
        self.spend(len(data))
        self.check_time()
        return data

    def listing(self) -> dict[str, None]:
        """Every file of the store (its manifest and signature aside), at most ``max_store_files()``
        and ``MAX_DEPTH`` deep; anything beyond is refused before it is all walked."""
        if not self.root.is_dir():
            raise StoreRefused(f"{self.root} is not a Zarr store directory")
        found: dict[str, None] = {}
        pending = [(self.root, "")]
        while pending:
            folder, prefix = pending.pop()
            with os.scandir(folder) as entries:
                for entry in entries:
                    rel = f"{prefix}{entry.name}"
                    if entry.is_dir():
                        if rel.count("/") >= MAX_DEPTH:
                            raise StoreRefused(f"{rel[:200]} is nested deeper than {MAX_DEPTH} levels")
                        pending.append((Path(entry.path), f"{rel}/"))
                    elif rel not in (MANIFEST_FILE, SIGNATURE_FILE):
                        found[rel] = None
                    if len(found) > max_store_files():
                        raise StoreRefused(f"the store holds more than {max_store_files()} files")
            self.check_time()
        return found


class BoundedStore:
    """A store's metadata read and bounded (the module's rules); ``read`` then reads any of its
    files within the same limits. ``verify(rel, data)`` checks each file read (the manifest's
    digests for a miner's store); ``grid`` with ``contract`` applies the contract's layout too."""

    def __init__(self, files: BoundedFiles, listing: Mapping[str, Any], grid: Grid | None = None,
                 contract: bool = True, verify: Callable[[str, bytes], None] | None = None):
        check_manifest_size(listing)
        self.files, self.verify = files, verify or (lambda rel, data: None)
        self.root = {rel: files.get(rel, MAX_METADATA_BYTES) for rel in ROOT_METADATA if rel in listing}
        for rel, data in self.root.items():
            self.verify(rel, data)
        self.arrays = describe_store(self.root)
        if contract:
            check_arrays(self.arrays, grid)
        check_bounds(self.arrays)
        self.kinds: dict[str, ArraySpec | None] = classify_files(listing, self.arrays)

    def metadata_files(self) -> list[str]:
        """The listed metadata files besides the root's (per-array ``.zarray``, ``zarr.json``...)."""
        return sorted(rel for rel, spec in self.kinds.items() if spec is None and rel not in self.root)

    def cap(self, rel: str) -> int:
        spec = self.kinds[rel]
        return MAX_METADATA_BYTES if spec is None else compressed_cap(spec)

    def plan(self, rels: Iterable[str]) -> None:
        """Set the byte budget of the read (when the limits give none): the caps of ``rels``."""
        if self.files.budget is None:
            self.files.budget = sum(len(d) for d in self.root.values()) + sum(self.cap(rel) for rel in rels)

    def read(self, rel: str) -> bytes:
        """One file within its cap and the read's budget and deadline, verified; a chunk must be
        unable to expand beyond its declared size (``check_chunk``)."""
        data = self._get(rel)
        if self.kinds[rel] is not None:
            self._chunk_rule(rel, check_chunk, data)
        return data

    def decode(self, rel: str) -> np.ndarray:
        """One chunk read as ``read`` reads it (cap, budget, deadline, verified) and decoded into a
        buffer of exactly its declared size (``decode_chunk``, the rule ``check_chunk`` applies,
        so the chunk is decoded once): its bytes, as uint8."""
        return self._chunk_rule(rel, decode_chunk, self._get(rel))

    def chunks_holding(self, name: str, where: tuple) -> list[str]:
        """The stored chunks of array ``name`` that hold the selection ``where`` (an index or
        ``slice(None)`` per dimension); an array the metadata does not declare is refused."""
        spec = self.arrays.get(name)
        if spec is None or len(where) != len(spec.shape):
            raise StoreRefused(f"array {name[:60]!r} is not declared with {len(where)} dimensions")
        ranges = [range(n) if isinstance(i, slice) else (i // c,)
                  for i, n, c in zip(where, spec.grid_counts, spec.chunks)]
        return [rel for rel in map(spec.chunk_key, product(*ranges)) if rel in self.kinds]

    def _get(self, rel: str) -> bytes:
        data = self.files.get(rel, self.cap(rel))
        self.verify(rel, data)
        return data

    def _chunk_rule(self, rel: str, rule: Callable[[ArraySpec, bytes], Any], data: bytes) -> Any:
        try:
            return rule(self.kinds[rel], data)
        except StoreRefused as exc:
            raise StoreRefused(f"chunk {rel}: {exc}") from None

    def read_all(self, rels: list[str], workers: int, sink: Callable[[str, bytes], None]) -> int:
        """``read`` every one of ``rels`` (``workers`` at once), handing each to ``sink``; the bytes read.

        Each worker takes the next file until none is left (no future per file, the caller reads
        too); once a failure is recorded no worker takes another file, the files being read are
        finished, and the first failure is raised."""
        pending, lock = iter(rels), threading.Lock()
        totals, failures = [0] * workers, []

        def work(slot: int) -> None:
            while not failures:
                with lock:
                    rel = next(pending, None)
                if rel is None:
                    return
                try:
                    data = self.read(rel)
                    sink(rel, data)
                except BaseException as exc:  # noqa: BLE001 - handed to the caller below
                    failures.append(exc)
                    return
                totals[slot] += len(data)

        threads = [threading.Thread(target=work, args=(slot,), daemon=True) for slot in range(1, workers)]
        for thread in threads:
            thread.start()
        work(0)
        for thread in threads:
            thread.join()
        if failures:
            raise failures[0]
        return sum(totals)


def is_safe_relpath(rel: str) -> bool:
    """A store path must stay inside the store: relative, no ``..``, no backslashes."""
    return bool(rel) and not rel.startswith("/") and ".." not in rel.split("/") and "\\" not in rel


def open_local_store(path: str, variables: Iterable[str] | None = None, limits: FetchLimits | None = None,
                     workers: int = 4) -> BoundedStore:
    """A store on disk opened through ``BoundedStore`` before anything else opens it: its metadata,
    then every chunk of its coordinates and of its other arrays that are not (lat, lon) fields,
    read now, each within the limits; the read's byte budget also covers every chunk of the
    fields ``variables`` (all when None), which are read later only as they are needed (``decode``,
    ``read``), within the same budget and deadline. Refused: ``StoreRefused``."""
    files = LocalStoreFiles(Path(path), limits)
    store = BoundedStore(files, files.listing(), contract=False)
    wanted = None if variables is None else set(variables)
    small, fields = [], []
    for rel, spec in sorted(store.kinds.items()):
        if spec is None:
            continue
        if len(spec.dims) <= 1 or "lat" not in spec.dims:
            small.append(rel)
        elif wanted is None or spec.name in wanted:
            fields.append(rel)
    rels = store.metadata_files() + small
    store.plan(rels + fields)
    store.read_all(rels, workers, lambda rel, data: None)
    return store

"""The data cache's cap (GAIA_CACHE_MAX_GB) and its digest check, with real processes racing on it.

Every read checks each file's SHA-256 against the entry's marker: a flipped byte (same size) is
detected, logged, and the entry produced again. Past the cap the least recently used entries are
evicted, but never one a reader holds: a reader in another process keeps its entry through any
number of writers' evictions.
"""

from __future__ import annotations

import logging
import multiprocessing
import time
from pathlib import Path

import numpy as np
import pytest
import xarray as xr

from gaia_dagster.resources.cache import marker_path, reading
from gaia_dagster.resources.cache_bound import cache_bytes, cache_entries, register_bound

from zarr_entries import cached  # noqa: E402

LAT = np.linspace(90.0, -90.0, 73)
LON = np.arange(144) * 2.5


def dataset(seed: int) -> xr.Dataset:
    """A distinguishable entry of ~42 kB (one float32 field)."""
    values = (seed + np.add.outer(LAT, LON / 1000)).astype(np.float32)
    return xr.Dataset({"2t": (("lat", "lon"), values)}, coords={"lat": LAT, "lon": LON})


def entry(root: Path, n: int) -> Path:
    return root / "era5" / f"{n:04d}" / "truth.zarr"


def entry_size(root: Path) -> int:
    return next(e.size for e in cache_entries(root))


def test_a_flipped_byte_is_detected_logged_and_the_entry_produced_again(tmp_path, caplog):
    path = entry(tmp_path, 1)
    calls = []

    def produce() -> xr.Dataset:
        calls.append(1)
        return dataset(7)

    cached(path, produce)
    chunk = max((p for p in path.rglob("*") if p.is_file() and not p.name.startswith(".z")), key=lambda p: p.stat().st_size)
    data = bytearray(chunk.read_bytes())
    data[len(data) // 2] ^= 0x01  # one bit, same size: the size check cannot see it
    chunk.write_bytes(bytes(data))
    with caplog.at_level(logging.WARNING):
        again = cached(path, produce)
    assert len(calls) == 2, "the corrupt entry was trusted"
    assert "fails its sha256 check" in caplog.text and str(path) in caplog.text
    xr.testing.assert_identical(again, dataset(7))
    cached(path, produce)
    assert len(calls) == 2  # the refetched entry is good


def test_least_recently_used_entries_are_evicted_past_the_cap(tmp_path):
    cached(entry(tmp_path, 0), lambda: dataset(0))
    size = entry_size(tmp_path)
    register_bound(tmp_path, int(size * 3.5))
    for n in (1, 2):
        time.sleep(0.02)
        cached(entry(tmp_path, n), lambda n=n: dataset(n))
    time.sleep(0.02)
    cached(entry(tmp_path, 0), lambda: pytest.fail("entry 0 should still be cached"))  # read: now the most recent
    time.sleep(0.02)
    cached(entry(tmp_path, 3), lambda: dataset(3))  # 4 entries > 3.5: the least recently used (1) goes
    kept = sorted(int(e.path.parent.name) for e in cache_entries(tmp_path))
    assert kept == [0, 2, 3]
    assert not marker_path(entry(tmp_path, 1)).exists() and not entry(tmp_path, 1).exists()
    assert cache_bytes(tmp_path) <= size * 3.5


# -- real processes -------------------------------------------------------------------------------
def _hold(path: str, ready, release) -> None:  # noqa: ANN001
    """A reader in another process: holds the entry (shared) until told to let go."""
    with reading(Path(path)):
        ready.set()
        release.wait(60)


def _writer(root: str, cap: int, first: int, count: int, barrier, results) -> None:  # noqa: ANN001
    """A run filling the cache: writes ``count`` entries and reads each back, under the cap."""
    try:
        register_bound(Path(root), cap)
        barrier.wait(60)
        for n in range(first, first + count):
            ds = cached(entry(Path(root), n), lambda n=n: dataset(n))
            assert float(ds["2t"].values[0, 0]) == pytest.approx(n + 90.0)
        results.put(("ok", ""))
    except BaseException as exc:  # noqa: BLE001
        results.put(("error", repr(exc)[:300]))


@pytest.fixture(scope="module")
def forkserver():
    ctx = multiprocessing.get_context("forkserver")
    ctx.set_forkserver_preload([__name__, "gaia_dagster.resources.sources"])
    return ctx


def test_racing_writers_keep_the_cap_and_never_evict_under_a_reader(forkserver, tmp_path):
    held = entry(tmp_path, 9999)
    cached(held, lambda: dataset(9999))
    size = entry_size(tmp_path)
    cap = size * 5
    ready, release = forkserver.Event(), forkserver.Event()
    reader = forkserver.Process(target=_hold, args=(str(held), ready, release))
    reader.start()
    assert ready.wait(30)
    writers, per_writer = 4, 12
    barrier, results = forkserver.Barrier(writers), forkserver.Queue()
    procs = [forkserver.Process(target=_writer, args=(str(tmp_path), cap, w * 100, per_writer, barrier, results))
             for w in range(writers)]
    for p in procs:
        p.start()
    outcomes = [results.get(timeout=180) for _ in procs]
    for p in procs:
        p.join(30)
    assert all(o[0] == "ok" for o in outcomes), outcomes
    # 48 entries went through a 5-entry cache; the held one, the oldest of all, survived every eviction.
    assert marker_path(held).exists() and held.exists()
    assert cache_bytes(tmp_path) <= cap + writers * size  # at most each writer's entry in flight over it
    release.set()
    reader.join(30)
    register_bound(tmp_path, cap)
    for n in range(5000, 5005):  # released: the oldest entry, so the next evictions take it first
        cached(entry(tmp_path, n), lambda n=n: dataset(n))
    assert not held.exists()
    assert cache_bytes(tmp_path) <= cap

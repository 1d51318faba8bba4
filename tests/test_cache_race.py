"""Shared caches under concurrency: real processes race on one entry; incomplete entries are rebuilt.

The race tests start several processes (forkserver: the code is imported once, then each process
is a fresh fork of that server) that wait on one barrier and then fill and read the same entry,
the way two Dagster runs of ``era5_score`` did under the daemon. Every process must read the
complete dataset and the entry left on disk must be complete.
"""

from __future__ import annotations

import multiprocessing
import shutil
import threading
import time
from dataclasses import replace
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pytest
import xarray as xr

from gaia_dagster.core.contract import ALL_VARIABLES, LEVEL_VARIABLES, PRESSURE_LEVELS
from gaia_dagster.core.gfs_index import contract_dataset
from gaia_dagster.resources.sources import ensure_cached, held_variables

from zarr_entries import cached  # noqa: E402

PROCESSES = 6
PRODUCE_SECONDS = 0.2  # a source read takes a while: every racer sees the entry missing first
LAT = np.linspace(90.0, -90.0, 19)
LON = np.arange(36) * 10.0


def _field(variable: str) -> xr.DataArray:
    """A distinguishable contract field of ``variable`` on a 10-degree grid."""
    seed = sum(map(ord, variable))
    if variable in LEVEL_VARIABLES:
        values = seed + np.arange(len(PRESSURE_LEVELS))[:, None, None] * 100.0 + LAT[None, :, None] \
            + LON[None, None, :] / 1000
        return xr.DataArray(values, dims=("pressure_level", "lat", "lon"),
                            coords={"pressure_level": list(PRESSURE_LEVELS), "lat": LAT, "lon": LON})
    return xr.DataArray(seed + LAT[:, None] + LON[None, :] / 1000, dims=("lat", "lon"),
                        coords={"lat": LAT, "lon": LON})


def expected_dataset(variables=ALL_VARIABLES) -> xr.Dataset:  # noqa: ANN001
    return contract_dataset({v: _field(v) for v in variables}, {"source": "test"})


def planes_read(parts, variables) -> xr.Dataset:  # noqa: ANN001
    """Held entries (``EntryPlanes``) read a plane at a time, as one dataset to compare with the source."""
    data, levels = {}, list(PRESSURE_LEVELS)
    for v in variables:
        entry = parts[v]
        data[v] = ((("pressure_level", "lat", "lon"), np.stack([entry.plane(v, level) for level in levels]))
                   if v in LEVEL_VARIABLES else (("lat", "lon"), entry.plane(v)))
    coords = {"lat": entry.lat, "lon": entry.lon, **({"pressure_level": levels} if set(variables) & set(LEVEL_VARIABLES)
                                                     else {})}
    return xr.Dataset(data, coords=coords)


def slow_dataset(variables=ALL_VARIABLES) -> xr.Dataset:  # noqa: ANN001
    """The source read: slow, so that racers overlap."""
    time.sleep(PRODUCE_SECONDS)
    return expected_dataset(list(variables))


def _race_worker(kind: str, path: str, variables: list[str], barrier, results) -> None:  # noqa: ANN001
    """One racer: wait for the others, fill and read the entry, report what it read."""
    try:
        barrier.wait(timeout=60)
        if kind == "cached":
            ds = cached(Path(path), slow_dataset)
        elif kind == "ensure_cached":
            ensure_cached(Path(path), slow_dataset)
            ds = cached(Path(path), slow_dataset)
        else:
            with held_variables(Path(path), variables, slow_dataset) as parts:
                ds = planes_read(parts, variables)
        results.put(("ok", sorted(map(str, ds.data_vars)), {v: float(ds[v].sum()) for v in ds.data_vars}))
    except BaseException as exc:  # noqa: BLE001 - reported to the parent, which fails the test
        results.put(("error", repr(exc)[:300], {}))


@pytest.fixture(scope="module")
def forkserver():
    """Processes forked from one server that has imported the cache code once (fast, no threads)."""
    ctx = multiprocessing.get_context("forkserver")
    ctx.set_forkserver_preload([__name__, "gaia_dagster.resources.sources"])
    return ctx


def race(ctx, jobs: list[tuple[str, str, list[str]]]) -> list[tuple]:  # noqa: ANN001
    """Run one process per job, all released together by a barrier; the result of each."""
    barrier, results = ctx.Barrier(len(jobs)), ctx.Queue()
    procs = [ctx.Process(target=_race_worker, args=(*job, barrier, results)) for job in jobs]
    for p in procs:
        p.start()
    out = [results.get(timeout=120) for _ in procs]
    for p in procs:
        p.join(timeout=30)
    return out


def sums(variables) -> dict[str, float]:  # noqa: ANN001
    ds = expected_dataset(list(variables))
    return {v: float(ds[v].sum()) for v in ds.data_vars}


def test_processes_racing_on_one_sources_entry_all_read_the_complete_dataset(forkserver, tmp_path):
    path = tmp_path / "climatology" / "2024010112" / "climatology.zarr"
    jobs = [("cached" if i % 2 else "ensure_cached", str(path), []) for i in range(PROCESSES)]
    results = race(forkserver, jobs)
    bad = [r for r in results if r[:2] != ("ok", sorted(ALL_VARIABLES))]
    assert not bad, f"{len(bad)} of {PROCESSES} racers read an incomplete or failed entry: {bad[:3]}"
    assert all(r[2] == pytest.approx(sums(ALL_VARIABLES)) for r in results)
    with xr.open_zarr(path, consolidated=True) as on_disk:  # the entry left behind is whole
        xr.testing.assert_allclose(on_disk[list(ALL_VARIABLES)].load(), expected_dataset())
    assert path.with_name(path.name + ".complete").is_file()
    assert not [p.name for p in path.parent.iterdir() if p.name.endswith(".tmp")]  # no temporaries left


def test_processes_racing_on_per_variable_entries_all_read_every_variable(forkserver, tmp_path):
    directory = tmp_path / "era5" / "2024010212"
    subsets = [list(ALL_VARIABLES), ["2t", "msl", "t"], ["msl", "z", "2t"], ["q", "10u", "10v", "u", "v"]]
    jobs = [("variables", str(directory), subsets[i % len(subsets)]) for i in range(PROCESSES)]
    results = race(forkserver, jobs)
    bad = [(job[2], r) for job, r in zip(jobs, results) if r[0] != "ok"]
    assert not bad, f"{len(bad)} of {PROCESSES} racers failed: {bad[:3]}"
    for result in results:  # each racer got exactly the variables it asked for, with the right values
        assert result[2] == pytest.approx(sums(result[1]))
    assert sorted(r[1] for r in results) == sorted(sorted(job[2]) for job in jobs)
    for v in ALL_VARIABLES:
        with xr.open_zarr(directory / f"{v}.zarr", consolidated=True) as on_disk:
            xr.testing.assert_allclose(on_disk[v].load(), expected_dataset([v])[v])
        assert (directory / f"{v}.zarr.complete").is_file()


# -- incomplete or corrupt entries are rebuilt, never trusted -----------------------------------
class Producer:
    """A source that counts its reads."""

    def __init__(self):
        self.calls: list[list[str]] = []

    def __call__(self, variables=ALL_VARIABLES) -> xr.Dataset:  # noqa: ANN001
        self.calls.append(list(variables))
        return expected_dataset(list(variables))


def _chunk_files(entry: Path, variable: str) -> list[Path]:
    return sorted(p for p in (entry / variable).iterdir() if not p.name.startswith("."))


def test_an_entry_without_its_marker_is_rebuilt_not_trusted(tmp_path):
    path = tmp_path / "climatology.zarr"
    expected_dataset(["msl"]).to_zarr(path, mode="w", zarr_format=2, consolidated=True)  # the incident: msl only
    produce = Producer()
    ds = cached(path, produce)
    assert len(produce.calls) == 1 and set(ds.data_vars) == set(ALL_VARIABLES)
    xr.testing.assert_allclose(ds[list(ALL_VARIABLES)], expected_dataset())
    assert cached(path, produce) is not None and len(produce.calls) == 1  # now complete: read, not rebuilt

    ensured = tmp_path / "analysis.zarr"  # ensure_cached does not trust a bare path either
    expected_dataset(["msl"]).to_zarr(ensured, mode="w", zarr_format=2, consolidated=True)
    ensure_cached(ensured, produce)
    assert len(produce.calls) == 2
    with xr.open_zarr(ensured, consolidated=True) as on_disk:
        assert set(on_disk.data_vars) == set(ALL_VARIABLES)


@pytest.mark.parametrize("damage", ["truncated chunk", "garbage chunk", "missing chunk", "variable removed"])
def test_a_damaged_entry_is_rebuilt_on_read(tmp_path, damage):
    path = tmp_path / "truth.zarr"
    produce = Producer()
    cached(path, produce)
    chunk = _chunk_files(path, "t")[0]
    if damage == "truncated chunk":
        chunk.write_bytes(chunk.read_bytes()[: chunk.stat().st_size // 2])
    elif damage == "garbage chunk":
        chunk.write_bytes(b"\x5a" * chunk.stat().st_size)  # same size: only decoding it can tell
    elif damage == "missing chunk":
        chunk.unlink()
    else:
        shutil.rmtree(path / "2t")
    ds = cached(path, produce)
    assert len(produce.calls) == 2, f"a {damage} was trusted"
    xr.testing.assert_allclose(ds[list(ALL_VARIABLES)], expected_dataset())
    assert cached(path, produce) is not None and len(produce.calls) == 2


def test_per_variable_entries_rebuild_only_what_is_incomplete(tmp_path):
    produce = Producer()
    with held_variables(tmp_path, ["2t", "msl", "z"], produce) as parts:
        first = planes_read(parts, ("2t", "msl", "z"))
    assert produce.calls == [["2t", "msl", "z"]]
    (tmp_path / "msl.zarr.complete").unlink()  # a writer died before its marker landed
    chunk = _chunk_files(tmp_path / "z.zarr", "z")[0]
    chunk.write_bytes(chunk.read_bytes()[:10])
    with held_variables(tmp_path, ["2t", "msl", "z", "q"], produce) as parts:
        assert produce.calls[1] == ["msl", "z", "q"]
        again = planes_read(parts, ("2t", "msl", "z", "q"))
    xr.testing.assert_allclose(again[["2t", "msl", "z"]], first)
    xr.testing.assert_allclose(again["q"], expected_dataset(["q"])["q"])


def test_held_entries_are_read_a_plane_at_a_time_and_never_evicted_under_their_reader(tmp_path):
    """A held entry is one chunk a plane and reads only the planes asked for; it keeps its shared
    lock until the block ends (the evictor skips it), and is checked again when next held."""
    from gaia_dagster.resources.cache_bound import CachedEntry, evict

    produce = Producer()
    entry = tmp_path / "t.zarr"
    want = expected_dataset(["t"])["t"].sel(pressure_level=500).values
    with held_variables(tmp_path, ["t"], produce) as parts:
        planes = _chunk_files(entry, "t")
        assert len(planes) == len(PRESSURE_LEVELS)  # one chunk a plane
        for chunk in planes:
            if chunk.name != f"{PRESSURE_LEVELS.index(500)}.0.0":
                chunk.unlink()                       # only the 500 hPa plane is left to read
        np.testing.assert_array_equal(parts["t"].plane("t", 500), want)
        assert not evict(CachedEntry(entry, 1, 0.0))  # held: the evictor leaves it
        assert entry.exists()
    assert produce.calls == [["t"]]
    with held_variables(tmp_path, ["t"], produce) as parts:  # the damage is seen: fetched again
        xr.testing.assert_allclose(planes_read(parts, ["t"])["t"], expected_dataset(["t"])["t"])
    assert produce.calls == [["t"], ["t"]]
    assert evict(CachedEntry(entry, 1, 0.0)) and not entry.exists()  # let go: evictable


def test_a_held_plane_reads_as_xarray_reads_it_even_all_nan(tmp_path):
    """A plane read straight from its chunk file equals xarray's read of it; an all-NaN plane,
    whose chunk the writer leaves out, reads as NaN (the fill value) as xarray reads it."""
    def produce(variables):  # noqa: ANN001, ANN202
        ds = expected_dataset(list(variables))
        ds["t"][PRESSURE_LEVELS.index(500)] = np.nan
        return ds

    with held_variables(tmp_path, ["t", "2t"], produce) as parts:
        assert f"{PRESSURE_LEVELS.index(500)}.0.0" not in [p.name for p in _chunk_files(tmp_path / "t.zarr", "t")]
        with xr.open_zarr(tmp_path / "t.zarr", consolidated=True) as on_disk:
            for level in PRESSURE_LEVELS:
                got = parts["t"].plane("t", level)
                want = on_disk["t"].sel(pressure_level=level).values
                assert got.dtype == want.dtype and np.array_equal(got, want, equal_nan=True)
            assert np.isnan(parts["t"].plane("t", 500)).all()
            assert np.array_equal(parts["t"].lat, on_disk["lat"].values)
        np.testing.assert_array_equal(parts["2t"].plane("2t"), expected_dataset(["2t"])["2t"].values)
        with pytest.raises(KeyError):
            parts["2t"].plane("2t", 500)   # a surface variable has no level


@pytest.mark.parametrize("layout", ["levels in one chunk", "a fill value"])
def test_an_entry_not_written_a_plane_a_chunk_is_rebuilt(tmp_path, layout):
    """An entry whose files match its marker but that does not hold its variable as ``zarr_entry``
    writes it (one plane a chunk, nothing xarray decodes) is unreadable: it is fetched again."""
    from gaia_dagster.resources.cache import write_entry

    foreign = expected_dataset(["t"]).drop_encoding()
    encoding = {"t": {"chunks": (len(PRESSURE_LEVELS), LAT.size, LON.size)}} if layout == "levels in one chunk" \
        else {"t": {"chunks": (1, LAT.size, LON.size), "_FillValue": -1.0}}

    def build(tmp: Path) -> dict:
        foreign.to_zarr(tmp, mode="w-", zarr_format=2, consolidated=True, encoding=encoding)
        return {"variables": ["t"]}

    write_entry(tmp_path / "t.zarr", build)
    produce = Producer()
    with held_variables(tmp_path, ["t"], produce) as parts:
        np.testing.assert_array_equal(parts["t"].plane("t", 850),
                                      expected_dataset(["t"])["t"].sel(pressure_level=850).values)
    assert produce.calls == [["t"]]


def test_a_gfs_grib_without_marker_or_truncated_is_fetched_again(tmp_path):
    pytest.importorskip("cfgrib")
    from test_production_sources import INIT, _gfs_file  # the GFS file

    from gaia_dagster.resources.gfs import NoaaGFSSource
    from gaia_dagster.world.standin_servers import RangeServer  # the loopback bucket

    body, idx = _gfs_file("anl")
    prefix = "/gfs.20240101/00/atmos/gfs.t00z.pgrb2.0p25.f000"
    with RangeServer({prefix: body, prefix + ".idx": idx.encode()}) as server:
        source = NoaaGFSSource(base_url=server.url, cache_dir=tmp_path, timeout=10)
        first = source.analysis(INIT, ["msl", "2t"])
        grib = source.grib_path(INIT, 0, ["msl", "2t"])
        assert grib.with_name(grib.name + ".complete").is_file()
        server.log.clear()
        grib.write_bytes(grib.read_bytes()[:100])  # truncated: fetched again
        xr.testing.assert_identical(source.analysis(INIT, ["msl", "2t"]), first)
        assert server.log, "a truncated GRIB file was trusted"
        server.log.clear()
        grib.with_name(grib.name + ".complete").unlink()  # no marker: fetched again
        xr.testing.assert_identical(source.analysis(INIT, ["msl", "2t"]), first)
        assert server.log, "a GRIB file without its marker was trusted"
        server.log.clear()
        source.analysis(INIT, ["msl", "2t"])
        assert server.log == []  # complete: the cache answers alone


# -- forecast mirrors -----------------------------------------------------------------------------
def test_concurrent_mirror_fetches_of_one_job_do_not_interfere(tmp_path):
    from miner_server import running_miner, signed_client

    from gaia_dagster.core.contract import time_index
    from gaia_dagster.core.signing import keypair_from_uri
    from gaia_dagster.db.repository import ResponseRecord
    from gaia_dagster.stages.forecast import fetch_fields, mirror_dir, mirrored_fields

    t0 = datetime(2026, 10, 20, tzinfo=timezone.utc)
    hotkey = keypair_from_uri("//cache-race-miner").ss58_address
    indices = [time_index(h) for h in (24, 120, 240)]
    with running_miner(tmp_path / "miner", profile="climatology", hotkey_uri="//cache-race-miner",
                       resolution=10.0) as (base_url, _):  # the quickest profile to finish its job
        client = signed_client(read_timeout=10)
        job = client.initiate_fetch(base_url, hotkey, "validator-a", t0).job_id
        deadline = time.monotonic() + 60
        while client.poll_job(base_url, hotkey, job).status != "completed":
            assert time.monotonic() < deadline, "the test miner did not finish"
            time.sleep(0.1)
        with xr.open_zarr(tmp_path / "miner" / "forecasts" / f"{job}.zarr", consolidated=True) as store:
            expected = store[["t", "2t"]].isel(time=indices).load()
        row = ResponseRecord(1, 1, t0, hotkey, "validator-a", job, "day1_scored", base_url, None, None, None,
                             0, 0, 0, 0, None, None)
        root = tmp_path / "cache"

        # Run A holds its mirror open and keeps reading while run B fetches the same job and purpose.
        first, first_store = fetch_fields(client, row, root, "era5", indices)
        second_done, reads, errors = threading.Event(), [], []

        def second_run():
            try:
                ds, store = fetch_fields(client, replace(row), root, "era5", indices)
                reads.append((store.path, ds[["t", "2t"]].isel(time=indices).load()))
            except BaseException as exc:  # noqa: BLE001
                errors.append(exc)
            finally:
                second_done.set()

        thread = threading.Thread(target=second_run)
        thread.start()
        while not second_done.is_set():
            try:
                xr.testing.assert_allclose(first[["t", "2t"]].isel(time=indices).load(), expected)
            except BaseException as exc:  # noqa: BLE001
                errors.append(exc)
                break
        thread.join()
        assert not errors, f"concurrent mirrors interfered: {errors[0]!r}"
        second_path, second = reads[0]
        xr.testing.assert_allclose(second, expected)
        assert second_path != first_store.path  # each fetch has its own folder
        xr.testing.assert_allclose(first[["t", "2t"]].isel(time=indices).load(), expected)

        # A mirror is removed when its dataset is no longer used (context exit, or garbage collection).
        del first, second, reads
        assert not first_store.path.exists() and not second_path.exists()
        with mirrored_fields(client, row, root, "day1", [0]) as (ds, store):
            assert store.path.parent == mirror_dir(root, row, "day1") and ds["t"].isel(time=0).notnull().all()
        assert not store.path.exists()

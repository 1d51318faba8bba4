"""One bounded reader (issue 18): ``gaia-dagster score`` reads the forecast through the pipeline's
``BoundedStore`` with the same limits, so a store beyond them is refused before anything decodes it.

The compression bomb is the one the reference miner's ``compression_bomb`` fault writes (a true
plane followed by 40 zstd frames of 64 MiB of zeros, 2.5 GiB once decoded), here in a 0.25 degree
plane where it fits under the chunk's byte cap, so that ``decode_chunk`` must refuse it. The CLI
runs in a child process of its own, which reports its peak RSS (VmHWM): before this reader the
day-1 command decoded the bomb through xarray at 2.7 GB and scored it.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path

import numcodecs
import numpy as np
import pytest
import xarray as xr

from gaia_dagster.core.contract import DAY1_LEAD_HOURS, Grid
from gaia_dagster.core.store_limits import StoreRefused
from gaia_dagster.miner.faults import BOMB_FRAMES, _zero_frame
from gaia_dagster.resources.store_reader import FetchLimits, LocalStoreFiles, open_local_store
from gaia_dagster.score import open_forecast
from gaia_dagster.world.atmosphere import SyntheticAtmosphere
from gaia_dagster.world.stores import write_climatology, write_forecast, write_truth

T0 = datetime(2026, 10, 20, tzinfo=timezone.utc)
RSS_LIMIT_MIB = 1024
HWM = ("import atexit, sys\n"
       "from pathlib import Path\n"
       "atexit.register(lambda: print('VmHWM_kB=' + next(l.split()[1] for l in Path('/proc/self/status')"
       ".read_text().splitlines() if l.startswith('VmHWM:')), file=sys.stderr))\n"
       "from gaia_dagster.cli import main\n"
       "sys.exit(main(sys.argv[1:]))\n")


def plane_store(path: Path, bomb: bool) -> Path:
    """A 0.25 degree ``2t`` forecast at T0+6 h and T0+12 h, one zstd chunk per plane; with ``bomb``
    the 12 h chunk is followed by the bomb's frames."""
    grid = Grid(0.25)
    lat, lon = grid.lat, grid.lon
    plane = (250 + 40 * np.cos(np.deg2rad(lat))[:, None] + np.sin(np.deg2rad(lon))[None, :]).astype(np.float32)
    times = [np.datetime64((T0 + timedelta(hours=h)).replace(tzinfo=None), "ns") for h in (6, 12)]
    ds = xr.Dataset({"2t": (("time", "lat", "lon"), np.stack([plane, plane + 1]))},
                    coords={"time": times, "lat": lat, "lon": lon})
    ds.to_zarr(path, mode="w", zarr_format=2, consolidated=True,
               encoding={"2t": {"chunks": (1, lat.size, lon.size), "compressors": numcodecs.Zstd(level=1)}})
    if bomb:
        chunk = path / "2t" / "1.0.0"
        chunk.write_bytes(chunk.read_bytes() + _zero_frame() * BOMB_FRAMES)
    return path


@pytest.fixture(scope="module")
def day1_inputs(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("bounded")
    world = SyntheticAtmosphere(resolution=15.0)
    write_forecast(root / "reference.zarr", world, "clone", T0, leads=DAY1_LEAD_HOURS)
    write_truth(root / "analysis.zarr", world, T0, leads=DAY1_LEAD_HOURS)
    write_climatology(root / "clim.zarr", world, [T0 + timedelta(hours=h) for h in DAY1_LEAD_HOURS])
    plane_store(root / "honest.zarr", bomb=False)
    plane_store(root / "bomb.zarr", bomb=True)
    return root


def score_day1(root: Path, forecast: str) -> tuple[subprocess.CompletedProcess, float]:
    """``gaia-dagster score day1`` in a child process; its result and its peak RSS in MiB."""
    args = ["score", "day1", "--forecast", str(root / forecast), "--truth", str(root / "analysis.zarr"),
            "--reference", str(root / "reference.zarr"), "--climatology", str(root / "clim.zarr"),
            "--variables", "2t", "--init-time", T0.isoformat(), "--json"]
    done = subprocess.run([sys.executable, "-c", HWM, *args], capture_output=True, text=True, timeout=300,
                          env={**os.environ, "DAGSTER_DISABLE_TELEMETRY": "1"})
    hwm = next(line for line in done.stderr.splitlines() if line.startswith("VmHWM_kB="))
    return done, int(hwm.split("=")[1]) / 1024


def test_the_cli_refuses_a_compression_bomb_under_1_gb(day1_inputs):
    done, peak = score_day1(day1_inputs, "bomb.zarr")
    print(f"gaia-dagster score day1 on the bomb: exit {done.returncode}, peak RSS {peak:.0f} MiB")
    assert done.returncode == 2, done.stderr[-2000:]
    assert f"the forecast {day1_inputs / 'bomb.zarr'} is refused: chunk 2t/1.0.0" in done.stderr
    assert "destination buffer too small" in done.stderr
    assert peak < RSS_LIMIT_MIB


def test_the_cli_scores_the_same_store_without_the_bomb(day1_inputs):
    done, peak = score_day1(day1_inputs, "honest.zarr")
    assert done.returncode in (0, 1), done.stderr[-2000:]
    out = json.loads(done.stdout.strip().splitlines()[-1])
    assert out["variables"] == ["2t"] and out["metrics"], out
    assert peak < RSS_LIMIT_MIB


def test_the_pipeline_reader_refuses_the_same_bomb_with_the_same_reason(day1_inputs):
    """The pipeline's reader (``BoundedStore``, here over the files on disk) gives the same refusal."""
    store = open_local_store(str(day1_inputs / "bomb.zarr"))
    with pytest.raises(StoreRefused, match="chunk 2t/1.0.0: .*destination buffer too small"):
        store.read("2t/1.0.0")
    with pytest.raises(StoreRefused, match="chunk 2t/1.0.0: .*destination buffer too small"):
        store.decode("2t/1.0.0")


def test_the_cli_reads_each_plane_it_scores_through_the_bounded_reader_once(day1_inputs):
    """Only the metadata and coordinates are read when the forecast is opened; a plane's chunk is
    read (within the budget) and decoded when that plane is read, the other planes never."""
    path = day1_inputs / "bomb.zarr"   # its bomb is the 12 h chunk, never read here
    forecast = open_forecast(str(path), {"2t"})
    opened = forecast.store.files.spent
    chunks = {path / "2t" / "0.0.0", path / "2t" / "1.0.0"}
    assert opened == sum(f.stat().st_size for f in path.rglob("*") if f.is_file() and f not in chunks)
    at_6h = np.datetime64((T0 + timedelta(hours=6)).replace(tzinfo=None), "ns")
    plane = forecast.plane("2t", time=at_6h)
    assert forecast.store.files.spent - opened == (path / "2t" / "0.0.0").stat().st_size
    assert np.array_equal(plane, xr.open_zarr(path)["2t"].sel(time=at_6h).values)
    assert forecast.store.files.spent <= forecast.store.files.budget


def test_a_store_beyond_the_limits_is_refused_before_it_is_read(tmp_path):
    store = plane_store(tmp_path / "s.zarr", bomb=False)
    (store / "junk.bin").write_bytes(b"x")
    with pytest.raises(StoreRefused, match="neither metadata nor a chunk"):
        open_local_store(str(store))
    (store / "junk.bin").unlink()
    os.mkfifo(store / "2t" / "0.0.1")  # a FIFO would block a reader for ever; it is never opened
    with pytest.raises(StoreRefused, match="neither metadata nor a chunk"):
        open_local_store(str(store))
    (store / "2t" / "0.0.1").unlink()
    os.mkfifo(store / "2t" / "0.0.0.fifo")
    (store / "2t" / "0.0.0").unlink()
    (store / "2t" / "0.0.0.fifo").rename(store / "2t" / "0.0.0")
    with pytest.raises(StoreRefused, match="2t/0.0.0 is not a regular file"):
        open_local_store(str(store)).decode("2t/0.0.0")
    with pytest.raises(StoreRefused, match="within its 0 s deadline"):
        open_local_store(str(plane_store(tmp_path / "t.zarr", bomb=False)), limits=FetchLimits(deadline_s=0))
    with pytest.raises(StoreRefused, match="exceeds its budget of 100 bytes"):
        open_local_store(str(tmp_path / "t.zarr"), limits=FetchLimits(max_bytes=100))
    meta = json.loads((tmp_path / "t.zarr" / ".zmetadata").read_text())
    meta["metadata"]["lat/.zarray"].update(shape=[2 ** 28], chunks=[2 ** 28])
    (tmp_path / "t.zarr" / ".zmetadata").write_text(json.dumps(meta))
    with pytest.raises(StoreRefused, match="array lat has chunks .268435456,. of 2147483648 bytes"):
        open_local_store(str(tmp_path / "t.zarr"))


def test_the_file_listing_is_bounded(tmp_path):
    store = plane_store(tmp_path / "s.zarr", bomb=False)
    for i in range(3100):
        (store / "2t" / f"9{i}.0.0").write_bytes(b"")
    with pytest.raises(StoreRefused, match="more than 3016 files"):
        LocalStoreFiles(store).listing()


def many_chunk_store(path: Path, steps: int = 40) -> Path:
    """A 30 degree ``2t`` forecast of ``steps`` 6-hourly planes, one chunk per plane."""
    grid = Grid(30.0)
    times = [np.datetime64((T0 + timedelta(hours=6 * k)).replace(tzinfo=None), "ns") for k in range(steps)]
    values = np.arange(steps * grid.lat.size * grid.lon.size, dtype=np.float32).reshape(steps, grid.lat.size, -1)
    xr.Dataset({"2t": (("time", "lat", "lon"), values)}, coords={"time": times, "lat": grid.lat, "lon": grid.lon}
               ).to_zarr(path, mode="w", zarr_format=2, consolidated=True,
                         encoding={"2t": {"chunks": (1, grid.lat.size, grid.lon.size)}})
    return path


def test_read_all_hands_every_file_over_once_and_counts_its_bytes(tmp_path):
    store = open_local_store(str(many_chunk_store(tmp_path / "s.zarr")))
    chunks = [rel for rel, spec in store.kinds.items() if spec is not None and spec.name == "2t"]
    assert len(chunks) == 40
    handed: list[str] = []
    total = store.read_all(chunks, 3, lambda rel, data: handed.append(rel))
    assert sorted(handed) == sorted(chunks)
    assert total == sum((tmp_path / "s.zarr" / rel).stat().st_size for rel in chunks)
    assert store.read_all(chunks[:2], 8, lambda rel, data: None) == sum(
        (tmp_path / "s.zarr" / rel).stat().st_size for rel in chunks[:2])   # more workers than files


def test_read_all_stops_at_the_first_failure_and_raises_it(tmp_path):
    """Rule: the first file that fails ends the read: once it is recorded, no worker takes another
    file (a refused store is not read to its end), and that failure is raised. Files other workers
    took before it was recorded are finished, so how many depends on scheduling; far fewer than the
    rest of the store."""
    store = open_local_store(str(many_chunk_store(tmp_path / "s.zarr", steps=200)))
    chunks = sorted(rel for rel, spec in store.kinds.items() if spec is not None and spec.name == "2t")
    handed: list[str] = []

    def sink(rel: str, data: bytes) -> None:
        if rel == chunks[4]:
            raise StoreRefused(f"{rel} refused by the test")
        handed.append(rel)

    with pytest.raises(StoreRefused, match=f"{chunks[4]} refused by the test"):
        store.read_all(chunks, 3, sink)
    assert chunks[4] not in handed
    assert len(handed) < len(chunks) // 2   # a reader that went on after a failure would hand over 199

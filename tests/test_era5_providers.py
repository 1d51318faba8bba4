"""ERA5 by provider, the WeatherBench2 climatology and NOAA's bucket layouts, on loopback stand-ins.

The world's fields are written in each service's real format (``world/standin_formats.py``) and
served as the service does (``world/standin_servers.py``): an ARCO-ERA5-layout Zarr, the CDS API as
cdsapi speaks it (the job is queued, run, then served), the WeatherBench2 climatology Zarr, and the
NOAA bucket with ``.idx`` files and GRIB2 messages. Nothing here touches the internet.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta, timezone

import numpy as np
import pytest
import xarray as xr

pytest.importorskip("cfgrib")
pytest.importorskip("cdsapi")

from gaia_dagster.core.contract import ALL_VARIABLES, PRESSURE_LEVELS  # noqa: E402
from gaia_dagster.core.gfs_index import gfs_file_url  # noqa: E402
from gaia_dagster.resources.climatology import WeatherBench2Climatology, climatology_key  # noqa: E402
from gaia_dagster.resources.era5 import ArcoERA5Source  # noqa: E402
from gaia_dagster.resources.era5_cds import CdsERA5Source  # noqa: E402
from gaia_dagster.resources.gfs import NoaaGFSSource, NotPublished  # noqa: E402
from gaia_dagster.world.atmosphere import SyntheticAtmosphere  # noqa: E402
from gaia_dagster.world.standin_formats import (  # noqa: E402
    gfs_grib_file, write_arco_store, write_wb2_climatology,
)
from gaia_dagster.world.standin_servers import CdsServer, RangeServer, store_files  # noqa: E402

T0 = datetime(2026, 10, 20, tzinfo=timezone.utc)
VALID = [T0 + timedelta(hours=h) for h in (24, 48)]
KEY = "a1b2c3d4-0000-4000-8000-cafebabe0001"


@pytest.fixture(scope="module")
def world():
    return SyntheticAtmosphere(resolution=5.0)


@pytest.fixture(scope="module")
def arco(world, tmp_path_factory):
    path = tmp_path_factory.mktemp("arco") / "arco.zarr"
    write_arco_store(path, T0, 72, VALID, world.era5, stop=T0, stop_era5t=VALID[-1])
    return path


@pytest.fixture()
def cds(arco, monkeypatch):
    with CdsServer(arco, KEY, reach=lambda: VALID[-1], queue_s=0.2) as server:
        monkeypatch.setenv("CDSAPI_URL", server.base())
        monkeypatch.setenv("CDSAPI_KEY", KEY)
        monkeypatch.setenv("CDSAPI_RC", "/nonexistent/.cdsapirc")
        yield server


def test_both_providers_give_the_same_array_for_the_same_time(world, arco, cds, tmp_path):
    pytest.importorskip("aiohttp")  # fsspec's HTTP filesystem
    with RangeServer(store_files(arco, "arco.zarr")) as bucket:  # the ARCO store over loopback HTTP
        from_arco = ArcoERA5Source(url=f"{bucket.url}/arco.zarr").truth(VALID[0])
        assert any(path.endswith("/.zmetadata") for _, path, _ in bucket.log)
    from_cds = CdsERA5Source(cache_dir=tmp_path / "c", sleep_max=0.5).truth(VALID[0])
    truth = world.era5(VALID[0])
    assert list(from_cds.data_vars) == list(ALL_VARIABLES) == list(from_arco.data_vars)
    for name in ALL_VARIABLES:
        assert from_cds[name].dims == from_arco[name].dims
        np.testing.assert_array_equal(from_arco[name].values, truth[name].values)
        spread = float(np.ptp(truth[name].values)) or 1.0
        np.testing.assert_allclose(from_cds[name].values, from_arco[name].values, rtol=0, atol=spread * 1e-6)
    np.testing.assert_array_equal(from_cds["lat"].values, truth["lat"].values)
    np.testing.assert_array_equal(from_cds["lon"].values, truth["lon"].values)
    # One job per dataset: this time only, the 13 contract levels, queued, run and served.
    assert [name for name, _ in cds.requests] == ["reanalysis-era5-single-levels", "reanalysis-era5-pressure-levels"]
    for _, request in cds.requests:
        assert (request["year"], request["month"], request["day"], request["time"]) == (["2026"], ["10"], ["21"], ["00:00"])
    assert cds.requests[1][1]["pressure_level"] == [str(p) for p in PRESSURE_LEVELS]


def test_cds_asks_only_for_the_variables_needed(cds, tmp_path):
    source = CdsERA5Source(cache_dir=tmp_path, sleep_max=0.5)
    source.truth(VALID[1], ["2t", "z"])
    assert [(n, r["variable"]) for n, r in cds.requests] == [
        ("reanalysis-era5-single-levels", ["2m_temperature"]), ("reanalysis-era5-pressure-levels", ["geopotential"])]
    cds.requests.clear()
    source.truth(VALID[1], ["z"])
    assert [(n, r["variable"]) for n, r in cds.requests] == [("reanalysis-era5-pressure-levels", ["geopotential"])]


def test_each_era5_valid_time_is_asked_of_the_cds_once_and_cached_once(world, cds, tmp_path):
    """The pipeline's cache is the only one: ``era5_truth`` seeds one entry per (valid time,
    variable), and every ERA5 scoring after it reads those entries, with no CDS job of its own."""
    from gaia_dagster.resources.cache_bound import cache_entries
    from gaia_dagster.resources.sources import ProductionSources
    from gaia_dagster.resources.zarr_planes import FieldReader
    from gaia_dagster.stages.scoring import score_era5_dataset, seed_era5
    from gaia_dagster.world.stores import write_forecast

    leads = tuple(int((v - T0).total_seconds() // 3600) for v in VALID)
    clim = tmp_path / "wb2.zarr"
    write_wb2_climatology(clim, [climatology_key(t) for t in VALID], lambda doy, hour: world.climatology(T0))
    forecast = write_forecast(tmp_path / "forecast.zarr", world, "good", T0)
    sources = ProductionSources(era5_provider="cds", climatology_url=str(clim), storage_options_json="{}",
                                cache_dir=str(tmp_path / "cache"))
    seed_era5(sources, T0, leads)
    assert len(cds.requests) == 2 * len(leads)  # single and pressure levels, once per valid time
    seed_era5(sources, T0, leads)
    scores = [score_era5_dataset(FieldReader(xr.open_zarr(forecast), str(forecast)), sources, T0, leads, "miner x")
              for _ in range(2)]
    assert len(cds.requests) == 2 * len(leads)  # scoring read the cache, twice
    assert scores[0].score == scores[1].score and scores[0].rows == scores[1].rows and 0 < scores[0].score
    entries = sorted(e.path.relative_to(tmp_path / "cache").as_posix() for e in cache_entries(tmp_path / "cache"))
    assert entries == sorted(f"{kind}/{v:%Y%m%d%H}/{name}.zarr" for kind in ("climatology", "era5")
                             for v in VALID for name in ALL_VARIABLES)  # one copy of each


def test_cds_reach_is_the_catalogue_extent_and_later_times_are_not_asked_for(cds, tmp_path):
    source = CdsERA5Source(cache_dir=tmp_path, sleep_max=0.5)
    assert source.available_until() == VALID[-1]
    with pytest.raises(LookupError, match="not on the CDS yet"):
        source.truth(VALID[-1] + timedelta(hours=24), ["2t"])
    assert cds.requests == []


def test_the_cds_key_is_never_logged(cds, tmp_path, caplog, capfd):
    caplog.set_level(logging.DEBUG)
    CdsERA5Source(cache_dir=tmp_path, sleep_max=0.5).truth(VALID[0], ["msl"])
    out, err = capfd.readouterr()
    assert any("CDS:" in r.getMessage() for r in caplog.records)  # the client's messages are logged
    assert KEY not in caplog.text and KEY not in out and KEY not in err


def test_a_wrong_cds_key_is_refused(cds, tmp_path, monkeypatch):
    monkeypatch.setenv("CDSAPI_KEY", "not-the-key")
    with pytest.raises(Exception, match="401|Authentication"):
        CdsERA5Source(cache_dir=tmp_path, sleep_max=0.5).truth(VALID[0], ["msl"])


def test_wb2_climatology_reads_only_the_needed_slices(world, tmp_path):
    keys = [climatology_key(t) for t in VALID]
    store = tmp_path / "clim.zarr"
    write_wb2_climatology(store, keys, lambda doy, hour: world.climatology(T0))
    pytest.importorskip("aiohttp")
    with RangeServer(store_files(store, "wb2.zarr")) as bucket:
        got = WeatherBench2Climatology(url=f"{bucket.url}/wb2.zarr").climatology(VALID[0])
        chunk_reads = {path for _, path, _ in bucket.log if "/2m_temperature/" in path}
    assert chunk_reads == {f"/wb2.zarr/2m_temperature/0.{keys[0][0] - 1}.0.0"}  # one slice read
    want = world.climatology(VALID[0])
    for name in ALL_VARIABLES:
        np.testing.assert_array_equal(got[name].values, want[name].values)
    chunks = {p.name for p in (store / "2m_temperature").iterdir() if not p.name.startswith(".")}
    assert chunks == {f"0.{doy - 1}.0.0" for doy, _ in keys}  # only the (hour, day) slices written exist


@pytest.mark.parametrize("cycle, folder", [(datetime(2021, 3, 22, 6, tzinfo=timezone.utc), ""),
                                           (datetime(2021, 3, 22, 12, tzinfo=timezone.utc), "atmos/"),
                                           (datetime(2019, 6, 1, 0, tzinfo=timezone.utc), "")])
def test_gfs_url_follows_the_bucket_layout_of_its_day(cycle, folder):
    assert gfs_file_url("http://b", cycle, 12) == (
        f"http://b/gfs.{cycle:%Y%m%d}/{cycle:%H}/{folder}gfs.t{cycle:%H}z.pgrb2.0p25.f012")


def test_gfs_of_an_old_day_reads_the_old_layout_and_a_missing_file_says_so(world, tmp_path):
    cycle = datetime(2020, 7, 1, tzinfo=timezone.utc)
    body, idx = gfs_grib_file(world.gfs_analysis(cycle), cycle, "anl")
    prefix = "/gfs.20200701/00/gfs.t00z.pgrb2.0p25.f000"
    with RangeServer({prefix: body, prefix + ".idx": idx.encode()}) as server:
        source = NoaaGFSSource(base_url=server.url, cache_dir=tmp_path)
        got = source.analysis(cycle, ["2t", "z"])
        want = world.gfs_analysis(cycle)
        np.testing.assert_allclose(got["2t"].values, want["2t"].values, atol=0.01)
        np.testing.assert_allclose(got["z"].values, want["z"].values, atol=5.0)  # 16-bit packing, ~0.5 m
        with pytest.raises(NotPublished, match=r"not published yet or not available .*gfs\.20200701/06/"):
            source.analysis(cycle + timedelta(hours=6), ["2t"])

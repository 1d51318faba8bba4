"""Production sources (NOAA GFS by byte range, ARCO-ERA5, WeatherBench2 climatology) without internet.

GFS: real GRIB2 messages written with eccodes, a wgrib2-style ``.idx``, served by the
Range-honouring loopback bucket (``world/standin_servers.RangeServer``). ERA5 and climatology: local
Zarr stores laid out like the public ones.
"""

from __future__ import annotations

import shutil
from datetime import datetime, timezone

import numpy as np
import pytest
import xarray as xr

from gaia_dagster.core.contract import ALL_VARIABLES, PRESSURE_LEVELS, UNITS
from gaia_dagster.core.gfs_index import (
    GRAVITY,
    merge_ranges,
    message_ranges,
    parse_idx,
    select_messages,
    wanted_messages,
)

eccodes = pytest.importorskip("eccodes")
pytest.importorskip("cfgrib")

from gaia_dagster.resources.climatology import WeatherBench2Climatology  # noqa: E402
from gaia_dagster.resources.era5 import ArcoERA5Source  # noqa: E402
from gaia_dagster.resources.gfs import NoaaGFSSource  # noqa: E402
from gaia_dagster.world.standin_servers import RangeServer  # noqa: E402

INIT = datetime(2024, 1, 1, 0, tzinfo=timezone.utc)
LAT = np.linspace(90.0, -90.0, 19)
LON = np.arange(36) * 10.0
ARCO_LEVELS = (1, 2, 3, 5, 7, 10, 20, 30, 50, 70, 100, 125, 150, 175, 200, 225, 250, 300, 350, 400, 450,
               500, 550, 600, 650, 700, 750, 775, 800, 825, 850, 875, 900, 925, 950, 975, 1000)


# ---------------------------------------------------------------- GRIB2 + .idx + HTTP server


def _grib(param, type_of_level: str, level: int, values: np.ndarray) -> bytes:
    """One GRIB2 message on the 10-degree global grid; ``param`` is a shortName or (d, c, n)."""
    sample = "regular_ll_pl_grib2" if type_of_level == "isobaricInhPa" else "regular_ll_sfc_grib2"
    h = eccodes.codes_grib_new_from_samples(sample)
    try:
        for key, value in (("Ni", 36), ("Nj", 19), ("latitudeOfFirstGridPointInDegrees", 90.0),
                           ("longitudeOfFirstGridPointInDegrees", 0.0),
                           ("latitudeOfLastGridPointInDegrees", -90.0),
                           ("longitudeOfLastGridPointInDegrees", 350.0),
                           ("iDirectionIncrementInDegrees", 10.0), ("jDirectionIncrementInDegrees", 10.0),
                           ("typeOfLevel", type_of_level), ("level", level)):
            eccodes.codes_set(h, key, value)
        if isinstance(param, tuple):
            for key, value in zip(("discipline", "parameterCategory", "parameterNumber"), param):
                eccodes.codes_set(h, key, value)
        else:
            eccodes.codes_set(h, "shortName", param)
        eccodes.codes_set(h, "bitsPerValue", 24)
        eccodes.codes_set_values(h, np.asarray(values, dtype=float).ravel())
        return eccodes.codes_get_message(h)
    finally:
        eccodes.codes_release(h)


def _field(seed: float) -> np.ndarray:
    """A distinguishable (lat, lon) field: seed plus a lat/lon pattern."""
    return seed + np.add.outer(np.arange(19) * 0.5, np.arange(36) * 0.01)


# (idx VAR, idx LEVEL, GRIB param, typeOfLevel, level, value seed)
def _gfs_messages() -> list[tuple[str, str, object, str, int, float]]:
    """A GFS-like file: needed messages with unneeded ones interleaved (RH, surface TMP, 975 mb)."""
    msgs = [("PRMSL", "mean sea level", (0, 3, 1), "meanSea", 0, 101000.0),
            ("TMP", "surface", "t", "surface", 0, 280.0)]
    for p in (975,) + PRESSURE_LEVELS:
        msgs += [("HGT", f"{p} mb", "gh", "isobaricInhPa", p, 10000.0 + p),
                 ("TMP", f"{p} mb", "t", "isobaricInhPa", p, 200.0 + p / 10),
                 ("RH", f"{p} mb", "r", "isobaricInhPa", p, 50.0),
                 ("SPFH", f"{p} mb", "q", "isobaricInhPa", p, p * 1e-5),
                 ("UGRD", f"{p} mb", "u", "isobaricInhPa", p, 10.0 + p / 100),
                 ("VGRD", f"{p} mb", "v", "isobaricInhPa", p, -10.0 - p / 100)]
    msgs += [("TMP", "2 m above ground", "2t", "heightAboveGround", 2, 288.0),
             ("RH", "2 m above ground", "r", "heightAboveGround", 2, 70.0),
             ("UGRD", "10 m above ground", "10u", "heightAboveGround", 10, 5.0),
             ("VGRD", "10 m above ground", "10v", "heightAboveGround", 10, -5.0)]
    return msgs


def _gfs_file(forecast: str) -> tuple[bytes, str]:
    """The GRIB2 bytes and their ``.idx`` (``n:offset:d=YYYYMMDDHH:VAR:LEVEL:FCST:``)."""
    body, lines = b"", []
    for n, (var, level, param, tol, lvl, seed) in enumerate(_gfs_messages(), start=1):
        lines.append(f"{n}:{len(body)}:d=2024010100:{var}:{level}:{forecast}:")
        body += _grib(param, tol, lvl, _field(seed))
    return body, "\n".join(lines) + "\n"


@pytest.fixture(scope="module")
def gfs_server():
    """The bucket layout for the 2024-01-01 00 UTC cycle: f000 (analysis) and f012."""
    f012, idx012 = _gfs_file("12 hour fcst")
    f000, idx000 = _gfs_file("anl")
    prefix = "/gfs.20240101/00/atmos/gfs.t00z.pgrb2.0p25"
    files = {f"{prefix}.f012": f012, f"{prefix}.f012.idx": idx012.encode(),
             f"{prefix}.f000": f000, f"{prefix}.f000.idx": idx000.encode()}
    with RangeServer(files) as server:
        yield server, idx012


# ---------------------------------------------------------------- GFS


def test_idx_rules_select_and_merge():
    """Only wanted messages are selected; adjacent ranges merge; the last message runs to EOF."""
    text = "1:0:d=2024010100:PRMSL:mean sea level:anl:\n2:100:d=2024010100:RH:2 m above ground:anl:\n" \
           "3:250:d=2024010100:TMP:2 m above ground:anl:\n4:400:d=2024010100:UGRD:10 m above ground:anl:\n" \
           "5:520:d=2024010100:VGRD:10 m above ground:anl:\n"
    entries = parse_idx(text)
    assert message_ranges(entries)[-1] == (520, None)
    chosen = select_messages(entries, wanted_messages(["msl", "2t", "10u", "10v"]))
    assert [e.variable for e, _ in chosen] == ["PRMSL", "TMP", "UGRD", "VGRD"]
    assert merge_ranges(span for _, span in chosen) == [(0, 99), (250, None)]
    with pytest.raises(LookupError):
        select_messages(entries, wanted_messages(["t"]))


def test_gfs_forecast_fetches_only_needed_ranges_and_meets_the_contract(gfs_server, tmp_path):
    server, idx_text = gfs_server
    server.log.clear()
    source = NoaaGFSSource(base_url=server.url, cache_dir=tmp_path, timeout=10)
    ds = source.forecast(INIT, 12)

    # HTTP: the .idx, then one request per merged run of needed messages, nothing unneeded.
    entries = parse_idx(idx_text)
    expected = merge_ranges(span for _, span in select_messages(entries, wanted_messages(None)))
    data_requests = [rng for _, path, rng in server.log if path.endswith(".f012")]
    assert [path for _, path, _ in server.log if path.endswith(".idx")] == [
        "/gfs.20240101/00/atmos/gfs.t00z.pgrb2.0p25.f012.idx"]
    assert data_requests == [f"bytes={a}-" if b is None else f"bytes={a}-{b}" for a, b in expected]
    n_needed = len(wanted_messages(None))
    assert len(data_requests) < n_needed  # adjacent messages were merged
    unneeded = [span for e, span in zip(entries, message_ranges(entries))
                if (e.variable, e.level) not in wanted_messages(None)]
    for a, b in expected:
        for ua, ub in unneeded:
            assert b is not None and b < ua or (ub is not None and ub < a), "an unneeded message was fetched"

    # Contract: names, dims, grid, dtype, units, values.
    assert list(ds.data_vars) == list(ALL_VARIABLES)
    assert ds["2t"].dims == ("lat", "lon") and ds["z"].dims == ("pressure_level", "lat", "lon")
    assert tuple(int(p) for p in ds["pressure_level"].values) == PRESSURE_LEVELS
    np.testing.assert_allclose(ds["lat"].values, LAT)
    np.testing.assert_allclose(ds["lon"].values, LON)
    assert all(ds[v].dtype == np.float32 and ds[v].attrs["units"] == UNITS[v] for v in ALL_VARIABLES)
    np.testing.assert_allclose(ds["z"].sel(pressure_level=500).values, _field(10500.0) * GRAVITY, rtol=1e-5)
    np.testing.assert_allclose(ds["t"].sel(pressure_level=850).values, _field(285.0), rtol=1e-5)
    np.testing.assert_allclose(ds["q"].sel(pressure_level=1000).values, _field(0.01), rtol=1e-4)
    np.testing.assert_allclose(ds["msl"].values, _field(101000.0), rtol=1e-6)
    np.testing.assert_allclose(ds["2t"].values, _field(288.0), rtol=1e-6)
    np.testing.assert_allclose(ds["10v"].values, _field(-5.0), atol=1e-4)
    assert ds["2t"].values[0, 0] < ds["2t"].values[-1, 0]  # row 0 is the north pole (lat 90)

    # Cache: a second read does not touch the server.
    server.log.clear()
    again = source.forecast(INIT, 12)
    assert server.log == []
    xr.testing.assert_identical(ds, again)


def test_gfs_analysis_reads_f000_for_a_subset(gfs_server, tmp_path):
    server, _ = gfs_server
    server.log.clear()
    ds = NoaaGFSSource(base_url=server.url, cache_dir=tmp_path).analysis(INIT, ["msl", "u"])
    assert list(ds.data_vars) == ["msl", "u"]
    assert {path for _, path, _ in server.log} == {"/gfs.20240101/00/atmos/gfs.t00z.pgrb2.0p25.f000",
                                                "/gfs.20240101/00/atmos/gfs.t00z.pgrb2.0p25.f000.idx"}
    np.testing.assert_allclose(ds["u"].sel(pressure_level=250).values, _field(12.5), rtol=1e-5)


def test_gfs_missing_cycle_is_a_lookup_error(gfs_server, tmp_path):
    server, _ = gfs_server
    with pytest.raises(LookupError):
        NoaaGFSSource(base_url=server.url, cache_dir=tmp_path).forecast(INIT, 18)


# ---------------------------------------------------------------- ARCO-ERA5


def _arco_store(path) -> None:
    """A tiny ARCO-ERA5 lookalike: long names, 37 levels, latitude descending, padded time axis."""
    times = np.array([np.datetime64("2024-01-01T00") + np.timedelta64(6 * i, "h") for i in range(12)],
                     dtype="datetime64[ns]")
    shape2 = (times.size, LAT.size, LON.size)
    shape3 = (times.size, len(ARCO_LEVELS), LAT.size, LON.size)
    hours = np.arange(times.size, dtype=np.float32)[:, None, None]
    levels = np.asarray(ARCO_LEVELS, dtype=np.float32)[None, :, None, None]
    data = {"2m_temperature": (("time", "latitude", "longitude"), np.broadcast_to(250 + hours, shape2)),
            "10m_u_component_of_wind": (("time", "latitude", "longitude"), np.broadcast_to(1 + hours, shape2)),
            "10m_v_component_of_wind": (("time", "latitude", "longitude"), np.broadcast_to(2 + hours, shape2)),
            "mean_sea_level_pressure": (("time", "latitude", "longitude"), np.broadcast_to(1e5 + hours, shape2)),
            "total_precipitation": (("time", "latitude", "longitude"), np.zeros(shape2, np.float32))}
    for name, base in (("temperature", 200.0), ("u_component_of_wind", 10.0), ("v_component_of_wind", 20.0),
                       ("specific_humidity", 0.0), ("geopotential", 1000.0)):
        data[name] = (("time", "level", "latitude", "longitude"),
                      np.broadcast_to(base + levels + hours[..., None] * 1000, shape3).astype(np.float32))
    lat_field = np.broadcast_to(LAT[None, :, None], shape2).astype(np.float32)
    data["2m_temperature"] = (("time", "latitude", "longitude"), (250 + hours + lat_field).astype(np.float32))
    ds = xr.Dataset({k: (dims, np.ascontiguousarray(v, dtype=np.float32)) for k, (dims, v) in data.items()},
                    coords={"time": times, "level": np.asarray(ARCO_LEVELS, dtype=np.int64),
                            "latitude": LAT, "longitude": LON},
                    attrs={"valid_time_start": "1940-01-01", "valid_time_stop": "2024-01-01",
                           "valid_time_stop_era5t": "2024-01-02"})
    ds.to_zarr(path, mode="w", zarr_format=2, consolidated=True)  # ARCO is Zarr v2, consolidated


def test_era5_available_until_reads_the_store_attributes(tmp_path):
    _arco_store(tmp_path / "arco.zarr")
    source = ArcoERA5Source(url=str(tmp_path / "arco.zarr"))
    assert source.available_until() == datetime(2024, 1, 2, 23, tzinfo=timezone.utc)
    final_only = ArcoERA5Source(url=str(tmp_path / "arco.zarr"), include_era5t=False)
    assert final_only.available_until() == datetime(2024, 1, 1, 23, tzinfo=timezone.utc)
    with pytest.raises(LookupError):  # in the padded time axis but beyond the published reach
        source.truth(datetime(2024, 1, 3, 0, tzinfo=timezone.utc))


def test_era5_truth_meets_the_contract_and_reads_only_the_variables_asked_for(tmp_path):
    store = tmp_path / "arco.zarr"
    _arco_store(store)
    valid = datetime(2024, 1, 2, 12, tzinfo=timezone.utc)  # the 7th step (hours index 6)
    source = ArcoERA5Source(url=str(store))
    ds = source.truth(valid)
    assert list(ds.data_vars) == list(ALL_VARIABLES)
    assert ds["t"].dims == ("pressure_level", "lat", "lon") and ds["msl"].dims == ("lat", "lon")
    assert tuple(int(p) for p in ds["pressure_level"].values) == PRESSURE_LEVELS
    np.testing.assert_allclose(ds["lat"].values, LAT)
    np.testing.assert_allclose(ds["lon"].values, LON)
    assert all(ds[v].dtype == np.float32 for v in ALL_VARIABLES)
    np.testing.assert_allclose(ds["z"].sel(pressure_level=500).values, 1000 + 500 + 6000)
    np.testing.assert_allclose(ds["2t"].values[:, 0], 256 + LAT)
    np.testing.assert_allclose(ds["msl"].values, 1e5 + 6)

    shutil.rmtree(store / "temperature")  # a variable not asked for is never read
    subset = ArcoERA5Source(url=str(store)).truth(valid, ["z", "2t"])
    xr.testing.assert_equal(subset, ds[["z", "2t"]])


# ---------------------------------------------------------------- WeatherBench2 climatology


def test_climatology_slices_day_of_year_and_hour(tmp_path):
    lat = np.linspace(-90.0, 90.0, 5)  # WeatherBench2 stores latitude ascending
    lon = np.arange(4) * 90.0
    hours, days, levels = np.array([0, 6, 12, 18]), np.arange(1, 367), np.asarray(PRESSURE_LEVELS)
    key = (days[None, :] * 10 + hours[:, None] / 6).astype(np.float32)  # (hour, dayofyear)
    shape2 = (4, 366, lat.size, lon.size)
    shape3 = (4, 366, levels.size, lat.size, lon.size)
    surf = np.broadcast_to(key[:, :, None, None] + lat[None, None, :, None] / 1000, shape2).astype(np.float32)
    level = np.broadcast_to(key[:, :, None, None, None] + levels[None, None, :, None, None] * 1e4,
                            shape3).astype(np.float32)
    dims2, dims3 = ("hour", "dayofyear", "latitude", "longitude"), ("hour", "dayofyear", "level", "latitude",
                                                                      "longitude")
    names2 = ("2m_temperature", "10m_u_component_of_wind", "10m_v_component_of_wind", "mean_sea_level_pressure")
    names3 = ("temperature", "u_component_of_wind", "v_component_of_wind", "specific_humidity", "geopotential")
    ds = xr.Dataset({**{n: (dims2, surf) for n in names2}, **{n: (dims3, level) for n in names3}},
                    coords={"hour": hours, "dayofyear": days, "level": levels, "latitude": lat, "longitude": lon})
    store = tmp_path / "clim.zarr"
    ds.to_zarr(store, mode="w", zarr_format=2, consolidated=True)

    source = WeatherBench2Climatology(url=str(store))
    valid = datetime(2024, 3, 1, 18, tzinfo=timezone.utc)  # leap year: day 61, hour 18
    out = source.climatology(valid)
    assert list(out.data_vars) == list(ALL_VARIABLES)
    assert out["2t"].dims == ("lat", "lon") and out["q"].dims == ("pressure_level", "lat", "lon")
    np.testing.assert_allclose(out["lat"].values, lat[::-1])
    np.testing.assert_allclose(out["2t"].values[:, 0], 613 + lat[::-1] / 1000, rtol=1e-6)
    np.testing.assert_allclose(out["z"].sel(pressure_level=850).values, 613 + 850e4, rtol=1e-6)

    shutil.rmtree(store / "temperature")  # a variable not asked for is never read
    subset = WeatherBench2Climatology(url=str(store)).climatology(valid, ["2t"])
    xr.testing.assert_equal(subset, out[["2t"]])
    with pytest.raises(ValueError):
        source.climatology(datetime(2024, 3, 1, 3, tzinfo=timezone.utc))


def test_gfs_subset_reuses_a_cached_full_file(gfs_server, tmp_path):
    server, _ = gfs_server
    source = NoaaGFSSource(base_url=server.url, cache_dir=tmp_path)
    full = source.forecast(INIT, 12)
    server.log.clear()
    subset = source.forecast(INIT, 12, ["q", "10u"])
    assert server.log == []
    xr.testing.assert_identical(subset, full[["q", "10u"]])


def test_production_sources_resource_builds_the_production_sources_without_network(tmp_path):
    from gaia_dagster.resources.climatology import WeatherBench2Climatology
    from gaia_dagster.resources.era5 import ArcoERA5Source
    from gaia_dagster.resources.era5_cds import CdsERA5Source
    from gaia_dagster.resources.gfs import NoaaGFSSource
    from gaia_dagster.resources.sources import ProductionSources

    sources = ProductionSources(cache_dir=str(tmp_path), gfs_base_url="http://127.0.0.1:9")
    assert sources.resolution == 0.25
    assert isinstance(sources.gfs(), NoaaGFSSource)
    assert isinstance(sources.era5(), ArcoERA5Source)
    assert isinstance(sources.climatology(), WeatherBench2Climatology)
    assert isinstance(ProductionSources(cache_dir=str(tmp_path), era5_provider="cds").era5(), CdsERA5Source)
    with pytest.raises(ValueError, match="GAIA_ERA5_PROVIDER"):
        ProductionSources(era5_provider="crystal-ball").era5()

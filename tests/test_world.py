"""The embedded world: deterministic, in the contract, in the sanity ranges, ERA5 latency, profiles."""

from __future__ import annotations

import time
from datetime import datetime, timedelta, timezone

import numpy as np
import pytest

from gaia_dagster.core.contract import (
    ALL_VARIABLES, ERA5_LEAD_HOURS, LEVEL_VARIABLES, PRESSURE_LEVELS, UNITS, Grid, contract_problems,
)
from gaia_dagster.core.scoring.day1 import CLONE_THRESHOLDS, DAY1_VARIABLES, Day1Field, score_day1
from gaia_dagster.core.scoring.era5 import Era5Field, era5_field_metrics, era5_score_from_metrics
from gaia_dagster.core.scoring.metrics import cos_lat_weights, weighted_mse, weighted_rmse
from gaia_dagster.world import PROFILES, SyntheticAtmosphere, forecast_for_profile, forecast_step
from gaia_dagster.world.sources import WorldClimatologySource, WorldERA5Source, WorldGFSSource

T0 = datetime(2026, 10, 20, tzinfo=timezone.utc)


@pytest.fixture(scope="module")
def world() -> SyntheticAtmosphere:
    return SyntheticAtmosphere(resolution=5.0)


def plane(ds, variable, level=None):  # noqa: ANN001
    return ds[variable].values if level is None else ds[variable].sel(pressure_level=level).values


def test_same_call_twice_is_equal_and_other_times_differ(world):
    a = world.truth(T0 + timedelta(hours=6))
    b = SyntheticAtmosphere(resolution=5.0).truth(T0 + timedelta(hours=6))
    c = world.truth(T0 + timedelta(hours=12))
    for v in ALL_VARIABLES:
        np.testing.assert_array_equal(a[v].values, b[v].values)
        assert not np.array_equal(a[v].values, c[v].values)
    np.testing.assert_array_equal(world.gfs_forecast(T0, 12)["z"].values, world.gfs_forecast(T0, 12)["z"].values)
    assert not np.array_equal(SyntheticAtmosphere(5.0, seed=1).truth(T0)["2t"].values, world.truth(T0)["2t"].values)


def test_naive_and_aware_utc_times_are_the_same_moment(world):
    np.testing.assert_array_equal(world.truth(T0.replace(tzinfo=None))["msl"].values, world.truth(T0)["msl"].values)


@pytest.mark.parametrize("method", ["truth", "era5", "gfs_analysis", "climatology"])
def test_every_source_is_in_the_contract_layout(world, method):
    ds = getattr(world, method)(T0)
    assert set(ds.data_vars) == set(ALL_VARIABLES)
    assert ds.lat.values[0] == 90.0 and ds.lat.values[-1] == -90.0 and np.all(np.diff(ds.lat.values) < 0)
    assert ds.lon.values[0] == 0.0 and ds.lon.values[-1] == 355.0
    assert tuple(int(p) for p in ds.pressure_level.values) == PRESSURE_LEVELS
    assert np.issubdtype(ds.pressure_level.dtype, np.integer)
    assert "time" not in ds.dims
    for v in ALL_VARIABLES:
        assert ds[v].dtype == np.float32
        assert ds[v].dims == (("pressure_level", "lat", "lon") if v in LEVEL_VARIABLES else ("lat", "lon"))
        assert ds[v].attrs["units"] == UNITS[v]


def test_default_grid_and_variable_subsets():
    world = SyntheticAtmosphere()
    assert world.grid == Grid(1.5) and world.grid.shape == (121, 240)
    ds = world.gfs_forecast(T0, 12, variables=["2t", "z"])
    assert set(ds.data_vars) == {"2t", "z"} and ds["z"].shape == (13, 121, 240)
    np.testing.assert_array_equal(ds["z"].values, world.gfs_forecast(T0, 12)["z"].values)   # subsets agree
    surface_only = world.truth(T0, variables=["msl"])
    assert "pressure_level" not in surface_only.coords
    with pytest.raises(KeyError):
        world.truth(T0, variables=["sst"])


def test_one_valid_time_at_1p5_degrees_is_fast():
    world = SyntheticAtmosphere()
    world.gfs_forecast(T0, 12)
    start = time.perf_counter()
    world.truth(T0)
    world.gfs_forecast(T0, 12)
    assert time.perf_counter() - start < 0.5            # ~30 ms; generous for loaded machines


@pytest.mark.parametrize("hours", [0, 37, 150, 5000, 90_001])
def test_values_stay_in_the_sanity_ranges(world, hours):
    valid = T0 + timedelta(hours=hours)
    for ds in (world.truth(valid), world.gfs_analysis(valid), world.gfs_forecast(valid, 240),
               forecast_step(world, "good", valid, 240)):
        assert 180 < plane(ds, "2t").min() and plane(ds, "2t").max() < 340
        assert 90000 < plane(ds, "msl").min() and plane(ds, "msl").max() < 110000
        assert 45000 < plane(ds, "z", 500).min() and plane(ds, "z", 500).max() < 60000
        assert 220 < plane(ds, "t", 850).min() and plane(ds, "t", 850).max() < 320
        assert float(ds["q"].min()) >= 0
        assert np.isfinite(ds.to_array().values).all()


def test_zonal_mean_state_is_realistic(world):
    clim = world.climatology(T0)
    lat = clim.lat.values
    equator, pole = np.argmin(np.abs(lat)), 0
    t2 = plane(clim, "2t")[:, 0]
    assert 295 < t2[equator] < 305 and 235 < t2[pole] < 250
    t = clim["t"].values[:, equator, 0]
    troposphere = [PRESSURE_LEVELS.index(p) for p in (1000, 850, 700, 500, 300)]
    assert np.all(np.diff(t[troposphere]) < 0)                    # colder with height
    z = clim["z"].values[:, equator, 0]
    assert np.all(np.diff(z) < 0)                                 # z falls as pressure rises
    q = clim["q"].values[:, :, 0]
    assert 0.01 < q[-1, equator] < 0.02 and q[-1, pole] < q[-1, equator] and q[0, equator] < 1e-4
    u250 = plane(clim, "u", 250)[:, 0]
    assert u250.max() > 25                                        # a jet


def test_climatology_is_the_time_mean_of_the_truth(world):
    times = [T0 + timedelta(hours=6 * i) for i in range(0, 4 * 90)]
    mean = np.mean([plane(world.truth(t), "z", 500) for t in times], axis=0)
    clim = plane(world.climatology(T0), "z", 500)
    assert np.allclose(clim, clim[:, :1])                         # zonal
    assert np.sqrt(np.mean((mean - clim) ** 2)) < 0.15 * np.sqrt(np.mean((plane(world.truth(T0), "z", 500) - clim) ** 2))


def test_gfs_errors_grow_with_lead_and_day1_clones_are_never_accidental(world):
    w = cos_lat_weights(world.lat)
    valid = T0 + timedelta(hours=12)
    truth = world.truth(valid)
    assert 0.3 < weighted_rmse(plane(world.gfs_forecast(T0, 12), "2t"), plane(truth, "2t"), w) < 1.2
    assert 30 < weighted_rmse(plane(world.gfs_forecast(T0, 12), "z", 500), plane(truth, "z", 500), w) < 120
    errors = [weighted_mse(plane(world.gfs_forecast(T0, h), "z", 500),
                           plane(world.truth(T0 + timedelta(hours=h)), "z", 500), w) for h in (12, 120, 240)]
    assert errors[0] < errors[1] < errors[2]
    gfs = world.gfs_forecast(T0, 12)
    for profile in ("good", "persistence", "climatology"):
        fc = forecast_step(world, profile, T0, 12)
        for variable, level in DAY1_VARIABLES:
            d = weighted_mse(plane(fc, variable, level), plane(gfs, variable, level), w)
            assert d > 2 * CLONE_THRESHOLDS[(variable, level)], (profile, variable)


def test_era5_is_available_five_days_after_the_valid_time(world):
    now = datetime(2026, 11, 1, tzinfo=timezone.utc)
    era5 = WorldERA5Source(world, now=lambda: now)
    assert era5.available_until() == now - timedelta(days=5)
    np.testing.assert_array_equal(era5.truth(datetime(2020, 1, 1))["2t"].values,
                                  world.truth(datetime(2020, 1, 1))["2t"].values)
    era5.truth(now - timedelta(days=5))
    recent = now - timedelta(days=2)
    with pytest.raises(LookupError, match="not available yet"):
        era5.truth(recent)
    later = WorldERA5Source(world, now=lambda: recent + timedelta(days=5))
    assert later.truth(recent, ["2t"])["2t"].shape == world.grid.shape


def test_sources_follow_their_definitions(world):
    gfs, clim = WorldGFSSource(world), WorldClimatologySource(world)
    valid = T0 + timedelta(hours=12)
    w = cos_lat_weights(world.lat)
    truth = plane(world.truth(valid), "2t")
    analysis_err = weighted_mse(plane(gfs.analysis(valid), "2t"), truth, w)
    forecast_err = weighted_mse(plane(gfs.forecast(T0, 12), "2t"), truth, w)
    assert 0 < analysis_err < forecast_err
    c = plane(clim.climatology(valid), "2t")
    assert np.allclose(c, c[:, :1])


def test_persistence_loses_skill_with_lead_and_good_beats_the_gfs(world):
    w = cos_lat_weights(world.lat)

    def error(profile: str, lead: int) -> float:
        fc = plane(forecast_step(world, profile, T0, lead), "z", 500)
        return weighted_mse(fc, plane(world.truth(T0 + timedelta(hours=lead)), "z", 500), w)

    assert error("persistence", 6) < error("persistence", 24) < error("persistence", 48)
    for lead in (12, 120, 240):
        assert error("good", lead) < error("clone", lead)
    np.testing.assert_array_equal(plane(forecast_step(world, "persistence", T0, 6), "2t"),
                                  plane(forecast_step(world, "persistence", T0, 240), "2t"))
    assert not np.array_equal(plane(forecast_step(world, "good", T0, 24, member="a"), "2t"),
                              plane(forecast_step(world, "good", T0, 24, member="b"), "2t"))


def test_whole_forecast_is_in_the_contract(world):
    ds = forecast_for_profile(world, "good", T0)
    assert contract_problems(ds, world.grid, T0) == []
    assert ds.attrs["forecast_start_time"] == T0.isoformat()
    assert ds["time"].dtype == np.dtype("datetime64[ns]") and ds.sizes["time"] == 40
    assert ds["time"].values[0] == np.datetime64("2026-10-20T06:00", "ns")
    assert ds["z"].dims == ("time", "pressure_level", "lat", "lon") and ds["z"].dtype == np.float32
    np.testing.assert_array_equal(ds["msl"].values[3], plane(forecast_step(world, "good", T0, 24), "msl"))
    nan = forecast_for_profile(world, "nan", T0)
    assert np.isnan(nan["2t"].values).all() and np.isnan(nan["q"].values).all()
    with pytest.raises(ValueError, match="unknown forecast profile"):
        forecast_step(world, "psychic", T0, 6)


def test_era5_score_ranks_the_profiles(world):
    truths = {h: world.era5(T0 + timedelta(hours=h)) for h in ERA5_LEAD_HOURS}
    clim = world.climatology(T0)
    w = cos_lat_weights(world.lat)
    scores = {}
    for profile in ("good", "clone", "persistence", "climatology"):
        rows = []
        for lead in ERA5_LEAD_HOURS:
            fc = forecast_step(world, profile, T0, lead)
            for variable, level in [("2t", None), ("msl", None), ("10u", None), ("z", 500), ("t", 850)]:
                fld = Era5Field(plane(fc, variable, level), plane(truths[lead], variable, level),
                                plane(clim, variable, level))
                rows.append(era5_field_metrics(lead, variable, level, fld, world.lat, w))
        scores[profile] = era5_score_from_metrics(rows).score
    assert scores["good"] > scores["clone"] + 0.1
    assert scores["clone"] > max(scores["persistence"], scores["climatology"]) + 0.1
    assert set(PROFILES) == {"good", "persistence", "climatology", "clone", "nan"}


def test_day1_clamps_the_world_clone_and_not_the_good_forecast(world):
    valid = T0 + timedelta(hours=12)
    truth, reference, clim = world.gfs_analysis(valid), world.gfs_forecast(T0, 12), world.climatology(valid)
    results = {}
    for profile in ("good", "clone", "persistence"):
        fc = forecast_step(world, profile, T0, 12)
        inputs = {key: Day1Field(plane(fc, *key), plane(truth, *key), plane(reference, *key), plane(clim, *key))
                  for key in DAY1_VARIABLES}
        results[profile] = score_day1(inputs, world.lat)
    assert results["clone"].clone_clamped and results["clone"].score <= 0.05
    assert not results["good"].clone_clamped and results["good"].score > 0.5
    assert all(c.sane for c in results["good"].components)
    assert results["good"].score > results["persistence"].score

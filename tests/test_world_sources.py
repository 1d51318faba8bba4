"""The embedded world: deterministic, in the contract, realistic ranges, ERA5 latency."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import numpy as np
import pytest

from gaia_dagster.core.contract import ALL_VARIABLES, LEVEL_VARIABLES, PRESSURE_LEVELS
from gaia_dagster.core.scoring.metrics import cos_lat_weights, weighted_mse
from gaia_dagster.world.atmosphere import SyntheticAtmosphere
from gaia_dagster.world.forecasts import forecast_for_profile, forecast_step
from gaia_dagster.world.sources import WorldClimatologySource, WorldERA5Source, WorldGFSSource

T0 = datetime(2026, 10, 20, tzinfo=timezone.utc)


@pytest.fixture(scope="module")
def world():
    return SyntheticAtmosphere(resolution=5.0)


def test_fields_are_in_the_contract_layout(world):
    ds = world.truth(T0)
    assert set(ds.data_vars) == set(ALL_VARIABLES)
    assert list(ds.lat.values[[0, -1]]) == [90.0, -90.0] and ds.lon.values[0] == 0 and ds.lon.values[-1] == 355.0
    assert tuple(ds.pressure_level.values) == PRESSURE_LEVELS
    for v in ALL_VARIABLES:
        assert ds[v].dtype == np.float32
        assert ds[v].dims == (("pressure_level", "lat", "lon") if v in LEVEL_VARIABLES else ("lat", "lon"))
    assert SyntheticAtmosphere().grid.shape == (121, 240)


@pytest.mark.parametrize("hours", [0, 37, 150, 5000])
def test_values_stay_in_the_sanity_ranges(world, hours):
    ds = world.truth(T0 + timedelta(hours=hours))
    assert 180 < ds["2t"].min() and ds["2t"].max() < 340
    assert 90000 < ds["msl"].min() and ds["msl"].max() < 110000
    z500 = ds["z"].sel(pressure_level=500)
    t850 = ds["t"].sel(pressure_level=850)
    assert 45000 < z500.min() and z500.max() < 60000
    assert 220 < t850.min() and t850.max() < 320
    assert float(ds["q"].min()) >= 0


def test_era5_is_available_five_days_after_the_valid_time(world):
    now = datetime(2026, 11, 1, tzinfo=timezone.utc)
    era5 = WorldERA5Source(world, now=lambda: now)
    assert era5.available_until() == now - timedelta(days=5)
    era5.truth(now - timedelta(days=5, hours=1))
    with pytest.raises(LookupError, match="not available yet"):
        era5.truth(now - timedelta(days=4))


def test_sources_follow_their_definitions(world):
    gfs, clim = WorldGFSSource(world), WorldClimatologySource(world)
    valid = T0 + timedelta(hours=12)
    w = cos_lat_weights(world.lat)
    truth = world.truth(valid)["2t"].values
    analysis_err = weighted_mse(gfs.analysis(valid)["2t"].values, truth, w)
    forecast_err = weighted_mse(gfs.forecast(T0, 12)["2t"].values, truth, w)
    assert 0 < analysis_err < forecast_err
    c = clim.climatology(valid)["2t"].values
    assert np.allclose(c, c[:, :1])  # zonal mean


def test_persistence_loses_skill_with_lead_and_good_beats_the_gfs(world):
    w = cos_lat_weights(world.lat)

    def error(profile: str, lead: int) -> float:
        fc = forecast_step(world, profile, T0, lead)["z"].sel(pressure_level=500).values
        return weighted_mse(fc, world.truth(T0 + timedelta(hours=lead))["z"].sel(pressure_level=500).values, w)

    assert error("persistence", 24) < error("persistence", 120)
    for lead in (12, 120, 240):
        assert error("good", lead) < error("clone", lead)


def test_whole_forecast_has_forty_steps_and_nan_profile_is_nan(world):
    ds = forecast_for_profile(world, "nan", T0)
    assert ds.sizes["time"] == 40 and ds.attrs["forecast_start_time"] == T0.isoformat()
    assert np.isnan(ds["2t"].values).all()
    with pytest.raises(ValueError, match="unknown forecast profile"):
        forecast_step(world, "psychic", T0, 6)

"""One scoring path: ``gaia-dagster score`` and the pipeline's stage function score the same store
to identical output, for a contract store and an Aurora-style (720 rows, ascending) one, over the
same variable list (``--variables`` / ``GAIA_ERA5_VARIABLES``, parsed by the one core function)."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import numpy as np
import pytest
import xarray as xr

from gaia_dagster.core.contract import DAY1_LEAD_HOURS, FORECAST_LEAD_HOURS, Grid, contract_problems
from gaia_dagster.core.scoring.variables import parse_variables, required_variables
from gaia_dagster.resources.sources import EmbeddedSources, WeatherSources
from gaia_dagster.score import FieldReader, open_forecast, open_store, score_day1_stores, score_era5_stores
from gaia_dagster.stages.scoring import score_day1_dataset, score_era5_dataset, seed_gfs
from gaia_dagster.world.atmosphere import SyntheticAtmosphere
from gaia_dagster.world.stores import write_climatology, write_forecast, write_truth

T0 = datetime(2026, 10, 20, tzinfo=timezone.utc)
LEADS = (24, 48)
RES = 3.0


@pytest.fixture(scope="module")
def stores(tmp_path_factory):
    root = tmp_path_factory.mktemp("one_path")
    world = SyntheticAtmosphere(resolution=RES)
    write_forecast(root / "forecast.zarr", world, "good", T0, leads=FORECAST_LEAD_HOURS)
    write_forecast(root / "reference.zarr", world, "clone", T0, leads=DAY1_LEAD_HOURS)
    write_truth(root / "era5.zarr", world, T0, leads=LEADS)
    write_truth(root / "analysis.zarr", world, T0, leads=DAY1_LEAD_HOURS)
    write_climatology(root / "clim.zarr", world, [T0 + timedelta(hours=h) for h in (*DAY1_LEAD_HOURS, *LEADS)])
    ds = xr.open_zarr(root / "forecast.zarr")
    aurora = ds.isel(lat=slice(None, -1)).isel(lat=slice(None, None, -1)).load()
    for name in aurora.variables:
        aurora[name].encoding = {}
    aurora.to_zarr(root / "aurora.zarr", mode="w")
    return root


def mirror(path, drop: tuple[str, ...] = ()) -> FieldReader:
    """A store as the stages read a verified mirror: planes straight from its chunk files."""
    return FieldReader(xr.open_zarr(path).drop_vars(list(drop)), str(path))


def sources(tmp_path, profile: str, variables: str | None = None) -> WeatherSources:
    extra = {"era5_variables": variables} if variables else {}
    return EmbeddedSources(resolution=RES, cache_dir=str(tmp_path / "cache"), scoring_profile=profile,
                          **extra)


@pytest.mark.parametrize("variables", [None, "2t,msl,t500,t850,z500,z850", "10u,q"])
@pytest.mark.parametrize("profile", ["deployed", "sound"])
@pytest.mark.parametrize("store", ["forecast.zarr", "aurora.zarr"])
def test_era5_cli_and_stage_agree(stores, tmp_path, store, profile, variables):
    """The same rows and scores from ``--variables`` and ``GAIA_ERA5_VARIABLES`` (era5_variables);
    the 720-row store scores under both profiles at 3 degrees too (deployed: Gaia's edge salvage
    fills the missing pole row before the coverage guard)."""
    cli = score_era5_stores(open_forecast(str(stores / store)),
                            FieldReader(open_store(str(stores / "era5.zarr")), str(stores / "era5.zarr")),
                            FieldReader(open_store(str(stores / "clim.zarr")), str(stores / "clim.zarr")), T0,
                            profile=profile, variables=variables)
    stage = score_era5_dataset(mirror(stores / store), sources(tmp_path, profile, variables), T0, LEADS,
                               "miner x")
    assert cli["failure"] is None and cli["profile"] == stage.profile == profile
    assert {int(k): v for k, v in cli["leads"].items()} == stage.lead_scores
    fields = sum(len(e.levels) for e in parse_variables(variables))
    assert len(cli["metrics"]) == len(stage.rows) == 2 * fields
    for a, b in zip(cli["metrics"], stage.rows):
        assert (a["variable"], a["level"] or 0, a["lead_hours"]) == (b["variable"], b["level"], b["lead_hours"])
        for k in ("rmse", "bias", "acc", "skill"):
            assert a[k] == b[k]
    assert all(0.3 < s <= 1 for s in stage.lead_scores.values())


def test_a_bad_variable_name_is_a_clear_error(tmp_path, stores):
    with pytest.raises(ValueError, match=r"GAIA_ERA5_VARIABLES.*'t851'.*allowed"):
        score_era5_dataset(mirror(stores / "forecast.zarr"), sources(tmp_path, "deployed", "2t,t851"), T0,
                           LEADS, "miner x")


def test_verification_requires_only_the_listed_variables(stores):
    """A forecast lacking q is refused for it only when q is in the ERA5 variable list."""
    lacking = xr.open_zarr(stores / "forecast.zarr").drop_vars("q")
    grid = Grid(RES)
    assert contract_problems(lacking, grid, T0) == ["variable q is missing"]
    listed = required_variables(parse_variables("2t,10u,10v,msl,t,u,v,z"))
    assert contract_problems(lacking, grid, T0, listed) == []


@pytest.mark.parametrize("profile", ["deployed", "sound"])
@pytest.mark.parametrize("store", ["forecast.zarr", "aurora.zarr"])
def test_day1_cli_and_stage_agree(stores, tmp_path, store, profile):
    src = sources(tmp_path, profile)
    gfs = seed_gfs(src, T0)   # the CLI is given the very GFS analysis and f012 the stage reads
    stage = score_day1_dataset(mirror(stores / store), src, T0, "miner x")
    cli = score_day1_stores(open_forecast(str(stores / store)), open_store(str(gfs["analysis_012"])),
                            open_store(str(gfs["forecast_f012"])), open_store(str(stores / "clim.zarr")), T0,
                            profile=profile)
    assert cli["score"] == stage.score and stage.profile == profile
    for a, b in zip(cli["metrics"], stage.rows):
        assert a["variable"] == b["variable"] and all(
            (a[k] is None and not np.isfinite(b[k])) or a[k] == b[k] for k in ("rmse", "acc", "skill"))


def test_aurora_store_scores_close_to_the_contract_store(stores, tmp_path):
    """Regridding the 720-row ascending store onto the truth grid loses only the pole row (sound:
    the edge row stands in for it), so its score stays near the contract store's."""
    src = sources(tmp_path, "sound")
    full = score_era5_dataset(mirror(stores / "forecast.zarr"), src, T0, LEADS, "miner x")
    aurora = score_era5_dataset(mirror(stores / "aurora.zarr"), src, T0, LEADS, "miner x")
    assert full.score != aurora.score and abs(full.score - aurora.score) < 0.02


def test_gaia_era5_variables_is_bound_as_envvar_and_parsed_by_the_core(monkeypatch):
    from dagster import EnvVar

    from gaia_dagster.definitions import default_resources

    monkeypatch.setenv("GAIA_ERA5_VARIABLES", "2t,t850")
    bound = default_resources()["sources"]
    assert isinstance(bound.era5_variables, EnvVar) and bound.era5_variables.env_var_name == "GAIA_ERA5_VARIABLES"
    assert [e.name for e in bound.process_config_and_initialize().era5_entries()] == ["2t", "t850"]


def test_day1_stage_leaves_out_a_variable_the_forecast_lacks(stores, tmp_path):
    """As Gaia skips a day-1 variable it cannot read: the others are scored."""
    src = sources(tmp_path, "deployed")
    seed_gfs(src, T0)
    full = score_day1_dataset(mirror(stores / "forecast.zarr"), src, T0, "miner x")
    lacking = score_day1_dataset(mirror(stores / "forecast.zarr", ("10u",)), src, T0, "miner x")
    assert [r["variable"] for r in lacking.rows] == [r["variable"] for r in full.rows if r["variable"] != "10u"]
    assert lacking.score > 0.3

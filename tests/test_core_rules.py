"""Pure rules: the state machines, per-stage retry, registry normalisation, the data contract."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import numpy as np
import pytest
import xarray as xr

from gaia_dagster.core.contract import (
    ALL_VARIABLES, FORECAST_LEAD_HOURS, LEVEL_VARIABLES, PRESSURE_LEVELS, Grid, contract_problems, time_index,
    valid_times,
)
from gaia_dagster.core.registry import RegistryEntry, endpoint_key, normalise_registry
from gaia_dagster.core.retry import DEFAULT_RETRIES
from gaia_dagster.core.states import RESPONSE_TRANSITIONS, InvalidTransition, check_transition, response_path

T0 = datetime(2026, 10, 20, tzinfo=timezone.utc)


def test_response_machine_is_exactly_the_refactor_plan():
    assert RESPONSE_TRANSITIONS["day1_scored"] == {"era5_scoring"}
    assert RESPONSE_TRANSITIONS["failed"] == set() and RESPONSE_TRANSITIONS["era5_scored"] == set()
    assert response_path("created", "forecast_ready") == ["fetch_initiated", "inference_running", "forecast_ready"]
    with pytest.raises(InvalidTransition, match="day1_scored -> failed"):
        check_transition(RESPONSE_TRANSITIONS, "day1_scored", "failed", "response 1")


def test_retry_policies_of_the_plan_and_scaling():
    query = DEFAULT_RETRIES["query"]
    assert [query.delay_after(n).total_seconds() for n in (1, 2, 3, 4)] == [60, 300, 900, 900]
    assert query.exhausted(3) and not query.exhausted(2)
    assert DEFAULT_RETRIES["poll"].max_attempts == 10
    assert DEFAULT_RETRIES["poll"].scaled(0.01).delay_after(5) == timedelta(seconds=3)


def test_registry_drops_repeated_hotkeys_and_shared_endpoints():
    entries = [RegistryEntry("a", "http://127.0.0.1:9000/"), RegistryEntry("b", "http://127.0.0.1:9001"),
               RegistryEntry("a", "http://127.0.0.1:9002"), RegistryEntry("c", "HTTP://127.0.0.1:9000")]
    kept, dups = normalise_registry(entries)
    assert [e.hotkey for e in kept] == ["a", "b"]
    assert [(d.kind, d.entry.hotkey, d.kept.hotkey) for d in dups] == [("hotkey", "a", "a"), ("endpoint", "c", "a")]
    assert "listed twice" in dups[0].describe() and "c" in dups[1].describe()
    assert endpoint_key("http://Host") == "http://host:80"
    with pytest.raises(ValueError, match="invalid hotkey"):
        normalise_registry([RegistryEntry("a|b", "http://x")])


def _contract_dataset(grid: Grid, times) -> xr.Dataset:  # noqa: ANN001
    data = {}
    for v in ALL_VARIABLES:
        if v in LEVEL_VARIABLES:
            data[v] = (("time", "pressure_level", "lat", "lon"),
                       np.zeros((len(times), len(PRESSURE_LEVELS), *grid.shape), np.float32))
        else:
            data[v] = (("time", "lat", "lon"), np.zeros((len(times), *grid.shape), np.float32))
    return xr.Dataset(data, coords={"time": [t.replace(tzinfo=None) for t in times],
                                    "pressure_level": list(PRESSURE_LEVELS), "lat": grid.lat, "lon": grid.lon})


def test_contract_accepts_a_conforming_store_and_names_each_problem():
    grid = Grid(15.0)
    good = _contract_dataset(grid, valid_times(T0))
    assert contract_problems(good, grid, T0) == []
    bad = _contract_dataset(Grid(10.0), valid_times(T0)[:39]).drop_vars("q")
    problems = " ".join(contract_problems(bad, grid, T0))
    assert "q is missing" in problems and "39 steps" in problems and "lat has 19 points" in problems


def test_grid_and_time_index():
    assert Grid(0.25).shape == (721, 1440) and Grid().lat[0] == 90 and Grid().lon[-1] == 359.75
    assert time_index(6) == 0 and time_index(12) == 1 and time_index(240) == 39 == len(FORECAST_LEAD_HOURS) - 1
    with pytest.raises(ValueError):
        time_index(0)

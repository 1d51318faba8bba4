"""The ``deployed`` and ``sound`` profiles where they differ, the variable list, and the regridding
rules behind them. That ``deployed`` equals Gaia v2.9.96's own code on the golden cases is
tests/test_gaia_golden.py (through ``gaia-dagster score``); these tests use the same cases through
the core."""

from __future__ import annotations

import json
import math
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from gaia_dagster.core.regrid import regrid_linear, salvage_edges
from gaia_dagster.core.scoring.profiles import DEPLOYED, scoring_profile
from gaia_dagster.core.scoring.stream import FieldPlanes, TruthGrid, score_day1_fields, score_era5_fields
from gaia_dagster.core.scoring.variables import allowed_names, parse_variables, required_variables

sys.path.insert(0, str(Path(__file__).parent / "golden"))
import gaia_cases as cases  # noqa: E402

GOLDEN = json.loads((Path(__file__).parent / "golden" / "gaia_v2_9_96.json").read_text())


def f32(a: np.ndarray) -> np.ndarray:
    """Gaia read the cases from float32 stores; so do we."""
    return np.asarray(a, dtype=np.float32)


def era5_fields(case: cases.Case, entries):  # noqa: ANN001, ANN201
    lat, lon = case.grid_of_forecast
    keys = [(e.variable, level) for e in entries for level in e.levels]
    for lead in cases.ERA5_GOLDEN_LEADS:
        if lead in case.missing_leads:
            continue
        at = cases.at_lead(case, lead)
        for variable, level in keys:
            if (variable, level) in at.forecast:
                yield FieldPlanes(lead, variable, level, f32(at.forecast[(variable, level)]), lat, lon,
                                  f32(case.truth[(variable, level)]), f32(case.climatology[(variable, level)]))


def score_era5_case(name: str, profile=DEPLOYED, variables: str | None = None):  # noqa: ANN001, ANN201
    case = cases.ERA5_CASES[name]()
    entries = parse_variables(variables)
    return score_era5_fields(era5_fields(case, entries), TruthGrid(case.lat, case.lon), profile,
                             scored_leads=cases.ERA5_GOLDEN_LEADS, entries=entries)


def score_day1_case(case: cases.Case, profile: str = "deployed"):  # noqa: ANN201
    fields = (FieldPlanes(12, v, lev, f32(fc), case.lat, case.lon, f32(case.truth[(v, lev)]),
                          f32(case.climatology[(v, lev)]), f32(case.reference[(v, lev)]))
              for (v, lev), fc in case.forecast.items())
    return score_day1_fields(fields, TruthGrid(case.lat, case.lon), profile)


def test_sound_differs_where_the_profiles_differ():
    """The sound profile keeps its choices: range checks, per-field reference, clamp on any clone."""
    out_of_range = cases.day1_out_of_range()
    assert score_day1_case(out_of_range, "sound").components[0].sane is False
    assert score_day1_case(out_of_range, "deployed").components[0].sane is True
    assert score_day1_case(cases.day1_insane_clone(), "sound").clone_clamped
    assert not score_day1_case(cases.day1_insane_clone(), "deployed").clone_clamped
    plain_sound = score_era5_case("plain", "sound")
    assert plain_sound.failure is None and abs(plain_sound.score - GOLDEN["era5"]["plain"]["era5_score"]) > 1e-4
    assert score_era5_case("missing_variable", "sound").failure is None


def test_guard_order_720_rows_on_the_coarse_grid():
    """Gaia regrids, salvages the border, then checks coverage: the 720-row forecast on the
    1.5-degree grid scores (without the salvage its missing pole row, 1/121, fails the guard)."""
    variables = GOLDEN["era5"]["720_on_1p5"]["variables"]
    deployed = score_era5_case("720_on_1p5", DEPLOYED, variables)
    assert deployed.failure is None
    assert abs(deployed.score - GOLDEN["era5"]["720_on_1p5"]["era5_score"]) < 1e-6
    unsalvaged = replace(DEPLOYED, edge_salvage=False)
    refused = score_era5_case("720_on_1p5", unsalvaged, variables)
    assert "coverage" in refused.failure and "99.17" in refused.failure
    assert score_era5_case("720_on_1p5", "sound", variables).failure is None


def test_sound_never_lets_a_nan_acc_raise_the_score():
    """50 hPa of t, q, v set to the climatology (NaN ACC): deployed scores it above the honest
    forecast, as Gaia does (those variables lose their ACC and skill terms at that lead); sound
    scores it below (a NaN ACC counts -1)."""
    assert GOLDEN["era5"]["nan_acc_level"]["era5_score"] > GOLDEN["era5"]["honest_level"]["era5_score"]
    assert score_era5_case("nan_acc_level").score > score_era5_case("honest_level").score
    assert score_era5_case("nan_acc_level", "sound").score < score_era5_case("honest_level", "sound").score


def test_sound_never_lets_day1_nans_raise_the_score():
    """2t all NaN: deployed skips the variable (Gaia's NaN correlation), sound counts it 0."""
    honest = cases.make_case(26, *cases.grid(), keys=cases.DAY1_KEYS, reference=True)
    assert score_day1_case(cases.day1_all_nan(), "sound").score < score_day1_case(honest, "sound").score
    deployed = score_day1_case(cases.day1_all_nan(), "deployed")
    assert deployed.failure is None and abs(deployed.score - GOLDEN["day1"]["all_nan"]["score"]) < 1e-6


def test_a_missing_lead_counts_zero_and_the_others_score():
    result = score_era5_case("missing_lead")
    assert result.failure is None and set(result.lead_scores) == {24}
    assert abs(result.score - result.lead_scores[24] / 10) < 1e-12


def test_variable_list_parsing():
    """Gaia's names: surface, bare level variable (every level), level variable with its level."""
    entries = parse_variables("2t,msl,t,z500")
    assert [e.name for e in entries] == ["2t", "msl", "t", "z500"]
    assert entries[2].all_levels and len(entries[2].levels) == 13 and entries[3].levels == (500,)
    assert required_variables(entries) == ("2t", "msl", "t", "z")
    assert [e.name for e in parse_variables(None)] == "2t,10u,10v,msl,t,u,v,q,z".split(",")
    assert "t850" in allowed_names() and "t851" not in allowed_names()
    for bad, says in (("2t,t851", "'t851'"), ("sst", "'sst'"), ("t,t500", "already"), ("2t,2t", "already")):
        with pytest.raises(ValueError, match=says) as exc:
            parse_variables(bad)
        assert "allowed" in str(exc.value) or "already" in says
    with pytest.raises(ValueError, match="day 1 scores single fields"):
        parse_variables("2t,z", single_fields_only=True)


def test_unknown_profile_is_refused():
    with pytest.raises(ValueError, match="unknown scoring profile"):
        scoring_profile("generous")


def test_salvage_edges_fills_border_nans_from_the_inward_neighbour():
    """Gaia's order: top, bottom, first column, last column, each from the unfilled plane."""
    plane = np.arange(20.0).reshape(4, 5)
    plane[3, :] = np.nan
    plane[1, 0] = np.nan
    out = salvage_edges(plane)
    assert np.array_equal(out[3, 1:4], plane[2, 1:4]) and out[1, 0] == plane[1, 1]
    assert math.isnan(out[3, 0]) and math.isnan(out[3, 4])     # corners: their row neighbour is NaN
    assert np.array_equal(salvage_edges(np.ones((3, 3))), np.ones((3, 3)))
    assert not np.isnan(salvage_edges(plane[:3])).any()


def test_regrid_spreads_nans_like_the_deployed_interpolation():
    """A NaN blanks its next neighbour along each axis (sorted ascending); outside rows are NaN."""
    lat, lon = np.linspace(90, -90, 7), np.arange(8) * 45.0
    values = np.arange(56, dtype=float).reshape(7, 8)
    values[3, 2] = np.nan
    out = regrid_linear(values, lat, lon, lat, lon)
    assert sorted(map(tuple, np.argwhere(np.isnan(out)))) == [(2, 2), (2, 3), (3, 2), (3, 3)]
    assert np.allclose(out[np.isfinite(out)], values[np.isfinite(out)])
    aurora = regrid_linear(values[:-1][::-1], lat[:-1][::-1], lon, lat, lon)
    assert np.isnan(aurora[-1]).all() and np.allclose(aurora[:-1][np.isfinite(aurora[:-1])],
                                                      values[:-1][np.isfinite(aurora[:-1])])
    edge = regrid_linear(np.nan_to_num(values[:-1]), lat[:-1], lon, lat, lon, outside="edge")
    assert np.array_equal(edge[-1], np.nan_to_num(values[-2]))
    assert math.isclose(regrid_linear(values, lat, lon, np.array([75.0]), np.array([22.5]))[0, 0],
                        float(np.mean(values[:2, :2])))

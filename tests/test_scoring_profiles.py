"""The ``deployed`` profile reproduces Gaia v2.9.96's scores to 1e-6 on seeded cases; ``sound``
keeps its own choices. Golden numbers: tests/golden/gaia_v2_9_96.json (how they were produced is
in tests/golden/gaia_cases.py)."""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path

import numpy as np
import pytest

from gaia_dagster.core.regrid import regrid_linear
from gaia_dagster.core.scoring.profiles import scoring_profile
from gaia_dagster.core.scoring.stream import FieldPlanes, TruthGrid, score_day1_fields, score_era5_fields

sys.path.insert(0, str(Path(__file__).parent / "golden"))
import gaia_cases as cases  # noqa: E402

GOLDEN = json.loads((Path(__file__).parent / "golden" / "gaia_v2_9_96.json").read_text())
TOL = 1e-6


def f32(a: np.ndarray) -> np.ndarray:
    """Gaia read the cases from float32 stores; so do we."""
    return np.asarray(a, dtype=np.float32)


def era5_fields(name: str, case: cases.Case, leads=cases.ERA5_GOLDEN_LEADS):  # noqa: ANN001, ANN201
    aurora = name == "720_ascending"
    for lead in leads:
        at = cases.at_lead(case, lead)
        for (variable, level), fc in at.forecast.items():
            lat = cases.as_720_ascending(case.lat) if aurora else case.lat
            planes = cases.as_720_ascending(fc) if aurora else fc
            yield FieldPlanes(lead, variable, level, f32(planes), lat, case.lon, f32(case.truth[(variable, level)]),
                              f32(case.climatology[(variable, level)]))


def score_era5_case(name: str, profile: str = "deployed"):  # noqa: ANN201
    case = cases.ERA5_CASES[name]()
    return score_era5_fields(era5_fields(name, case), TruthGrid(case.lat, case.lon), profile,
                             scored_leads=cases.ERA5_GOLDEN_LEADS)


def score_day1_case(name: str, profile: str = "deployed"):  # noqa: ANN201
    case = cases.DAY1_CASES[name]()
    fields = (FieldPlanes(12, v, lev, f32(fc), case.lat, case.lon, f32(case.truth[(v, lev)]),
                          f32(case.climatology[(v, lev)]), f32(case.reference[(v, lev)]))
              for (v, lev), fc in case.forecast.items())
    return score_day1_fields(fields, TruthGrid(case.lat, case.lon), profile)


SCORED_ERA5 = [n for n, g in GOLDEN["era5"].items() if g["scored"]]
REFUSED_ERA5 = [n for n, g in GOLDEN["era5"].items() if not g["scored"]]


@pytest.mark.parametrize("name", SCORED_ERA5)
def test_deployed_era5_matches_gaia(name):
    """Rules: level collapse then clamp, median RMSE reference, NaN spread by the regrid + coverage +
    climatology fill (nan_spread), 720-row ascending forecast regridded (720_ascending)."""
    gold = GOLDEN["era5"][name]
    result = score_era5_case(name)
    assert result.failure is None
    assert abs(result.score - gold["era5_score"]) < TOL
    for lead, want in gold["lead_scores"].items():
        assert abs(result.lead_scores[int(lead)] - want) < TOL


@pytest.mark.parametrize("name", SCORED_ERA5)
def test_deployed_era5_rows_match_gaia(name):
    """Per-variable RMSE (collapsed), per-level ACC and skill, and the surface bias (unweighted mean)."""
    gold = GOLDEN["era5"][name]
    result = score_era5_case(name)
    rows = {(m.variable, m.level, m.lead_hours): m for m in result.metrics}
    checked = 0
    for comp in gold["components"]:
        level = None if comp["pressure_level"] is None else int(comp["pressure_level"])
        m = rows[(comp["variable_name"], level, int(comp["lead_hours"]))]
        assert abs(m.rmse - comp["rmse"]) < TOL * max(1.0, abs(comp["rmse"]))
        assert abs(m.acc - comp["acc"]) < TOL
        if level is None:
            assert abs(m.bias - comp["bias"]) < TOL * max(1.0, abs(comp["bias"]))
            assert abs(m.skill - comp["skill_score"]) < TOL
        checked += 1
    assert checked == 2 * 69


@pytest.mark.parametrize("name", REFUSED_ERA5)
def test_deployed_era5_refuses_as_gaia(name):
    """Coverage below 0.9985, a NaN surface ACC, a missing variable: no ERA5 score."""
    result = score_era5_case(name)
    assert result.failure and result.score == 0.0


@pytest.mark.parametrize("name", list(GOLDEN["day1"]))
def test_deployed_day1_matches_gaia(name):
    """Rules: no range checks (out_of_range), NaNs skipped (nan), clamp counts sane variables only
    (insane_clone), clamp on a sane clone (clone)."""
    gold = GOLDEN["day1"][name]
    result = score_day1_case(name)
    assert abs(result.score - gold["score"]) < TOL
    for c in result.components:
        want = gold["variables"][f"{c.variable}{c.level or ''}"]
        if want["skill"] is not None:
            assert abs(c.skill - want["skill"]) < TOL and abs(c.acc - want["acc"]) < TOL
        else:
            assert not c.sane


def test_sound_differs_where_the_profiles_differ():
    """The sound profile keeps its choices: range checks, per-field reference, clamp on any clone."""
    assert score_day1_case("out_of_range", "sound").components[0].sane is False
    assert score_day1_case("out_of_range", "deployed").components[0].sane is True
    assert score_day1_case("insane_clone", "sound").clone_clamped
    assert not score_day1_case("insane_clone", "deployed").clone_clamped
    plain_sound = score_era5_case("plain", "sound")
    assert plain_sound.failure is None and abs(plain_sound.score - GOLDEN["era5"]["plain"]["era5_score"]) > 1e-4
    assert score_era5_case("missing_variable", "sound").failure is None


def test_unknown_profile_is_refused():
    with pytest.raises(ValueError, match="unknown scoring profile"):
        scoring_profile("generous")


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

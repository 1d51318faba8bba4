"""Gaia's scores: golden values on tiny grids and the properties every score must have."""

from __future__ import annotations

import math

import numpy as np
import pytest

from gaia_dagster.core.scoring.aggregate import miner_weights, overall_score, with_top_bonus
from gaia_dagster.core.scoring.day1 import DAY1_VARIABLES, Day1Field, clone_penalty, score_day1
from gaia_dagster.core.scoring.era5 import (
    Era5Field, era5_coverage_failure, era5_field_metrics, era5_score_from_metrics, score_era5, verification_failure,
)
from gaia_dagster.core.scoring.metrics import (
    acc_centred, acc_uncentred, area_lat_weights, bias_corrected_skill, cos_lat_weights, level_weights,
    weighted_bias, weighted_mse,
)

LAT = np.array([60.0, 0.0, -60.0])


def test_weighted_mse_by_hand():
    # cos weights 0.5, 1, 0.5 -> normalised 0.75, 1.5, 0.75; errors per row 1, 2, 3 (uniform in lon)
    w = cos_lat_weights(LAT)
    np.testing.assert_allclose(w, [0.75, 1.5, 0.75])
    f = np.array([[1.0, 1.0], [2.0, 2.0], [3.0, 3.0]])
    o = np.zeros((3, 2))
    assert weighted_mse(f, o, w) == pytest.approx((0.75 * 1 + 1.5 * 4 + 0.75 * 9) / 3.0)
    assert weighted_bias(f, o, w) == pytest.approx((0.75 * 1 + 1.5 * 2 + 0.75 * 3) / 3.0)


def test_skill_uses_the_unweighted_mean_in_the_bias_correction():
    w = cos_lat_weights(LAT)
    o = np.array([[0.0, 1.0], [2.0, 3.0], [4.0, 5.0]])
    f = o + np.array([[1.0, 1.0], [1.0, 1.0], [4.0, 4.0]])   # unweighted mean error 2
    ref = o + 1.0
    corrected = f - 2.0
    expected = 1 - weighted_mse(corrected, o, w) / weighted_mse(ref, o, w)
    assert bias_corrected_skill(f, o, ref, w) == pytest.approx(expected)
    assert expected == pytest.approx(1 - (0.75 * 1 + 1.5 * 1 + 0.75 * 4) / 3.0)


def test_acc_centred_and_uncentred_by_hand():
    w = np.ones(2)
    c = np.zeros((2, 2))
    f = np.array([[1.0, 2.0], [3.0, 4.0]])
    o = np.array([[1.0, 2.0], [3.0, 5.0]])
    fa, oa = f.ravel(), o.ravel()
    assert acc_uncentred(f, o, c, w) == pytest.approx(fa @ oa / math.sqrt((fa @ fa) * (oa @ oa)))
    assert acc_centred(f, o, c, w) == pytest.approx(np.corrcoef(fa, oa)[0, 1])
    assert math.isnan(acc_centred(c, o, c, w))


def test_level_and_latitude_weights():
    lw = level_weights([50, 100, 150, 200, 250, 300, 400, 500, 600, 700, 850, 925, 1000])
    assert lw.sum() == pytest.approx(1.0)
    assert lw[0] == pytest.approx(25 / 950) and lw[-1] == pytest.approx(37.5 / 950)
    lat = np.linspace(90, -90, 121)
    cos, area = cos_lat_weights(lat), area_lat_weights(lat)
    np.testing.assert_allclose(cos[10:-10], area[10:-10], rtol=1e-3)
    assert area[0] > 0 and cos[0] < 1e-12


def _fields(shape=(7, 12), seed=0):
    rng = np.random.default_rng(seed)
    truth = rng.normal(size=shape) * 3 + 280
    clim = np.full(shape, 280.0) + rng.normal(size=shape) * 0.1
    return truth, clim


def test_perfect_forecast_has_rmse_0_and_skill_1_and_climatology_has_skill_0():
    lat = np.linspace(60, -60, 7)
    truth, clim = _fields()
    perfect = era5_field_metrics(24, "2t", None, Era5Field(truth, truth, clim), lat)
    assert perfect.rmse == 0 and perfect.skill == pytest.approx(1.0) and perfect.acc == pytest.approx(1.0)
    # climatology as forecast: the bias correction only removes the mean anomaly, so skill ~ 0
    truth0 = truth - truth.mean() + clim.mean()
    climate = era5_field_metrics(24, "2t", None, Era5Field(clim, truth0, clim), lat)
    assert climate.skill == pytest.approx(0.0, abs=1e-2)


def test_day1_clone_is_clamped_and_an_honest_forecast_is_not():
    lat = np.linspace(60, -60, 7)
    rng = np.random.default_rng(1)
    base = {("2t", None): 280.0, ("msl", None): 101000.0, ("10u", None): 0.0, ("10v", None): 0.0, ("z", 500): 55000.0}
    scale = {("2t", None): 3, ("msl", None): 800, ("10u", None): 4, ("10v", None): 4, ("z", 500): 600}
    inputs_clone, inputs_good = {}, {}
    for key in DAY1_VARIABLES:
        truth = base[key] + scale[key] * rng.normal(size=(7, 12))
        reference = truth + 0.3 * scale[key] * rng.normal(size=(7, 12))
        good = truth + 0.1 * scale[key] * rng.normal(size=(7, 12))
        clim = np.full((7, 12), base[key])
        inputs_clone[key] = Day1Field(reference, truth, reference, clim)
        inputs_good[key] = Day1Field(good, truth, reference, clim)
    clone = score_day1(inputs_clone, lat)
    good = score_day1(inputs_good, lat)
    assert clone.clone_clamped and clone.score <= 0.05
    assert all(c.clone_penalty == 1.0 for c in clone.components)
    assert not good.clone_clamped and good.score > 0.5
    assert clone_penalty(50.0, 100.0) == 0.5 and clone_penalty(150.0, 100.0) == 0.0


def test_nan_and_out_of_range_forecasts_fail_with_the_variable_named():
    assert "2t" in verification_failure(np.full((3, 4), np.nan), "2t")
    assert "1e+12" in verification_failure(np.full((3, 4), 1e13), "msl")
    almost = np.ones((40, 50))
    almost[0, :5] = np.nan
    assert verification_failure(almost, "q700") is None
    assert "q700" in era5_coverage_failure(almost, "q700")
    lat = np.linspace(60, -60, 7)
    truth, clim = _fields()
    hot = truth + 100.0  # 2t of ~380 K is out of the sane range
    result = score_day1({("2t", None): Day1Field(hot, truth, truth + 0.5, clim)}, lat)
    assert not result.components[0].sane and "2t" in result.components[0].reason
    nan_result = score_era5({(24, "2t", None): Era5Field(np.full((7, 12), np.nan), truth, clim)}, lat)
    assert nan_result.score == 0 and "2t" in nan_result.failure


def test_era5_score_counts_a_missing_lead_as_zero():
    lat = np.linspace(60, -60, 7)
    truth, clim = _fields()
    rows = [era5_field_metrics(lead, "2t", None, Era5Field(truth, truth, clim), lat) for lead in (24, 48)]
    result = era5_score_from_metrics(rows, leads=(24, 48, 72, 96))
    assert result.lead_scores[24] == pytest.approx(result.lead_scores[48])
    assert result.score == pytest.approx((result.lead_scores[24] * 2) / 4)
    # a perfect forecast: 0.6 * 1 + 0.3 * 1 + 0.1 * 1 / (1 + 0) = 1
    assert result.lead_scores[24] == pytest.approx(1.0)


def test_overall_score_and_weights():
    assert overall_score(0.8, 0.2) == pytest.approx(0.81)
    assert overall_score(0.8, 0.05) == pytest.approx(0.76)
    assert with_top_bonus({"a": 0.8, "b": 0.8, "c": 0.5}) == pytest.approx({"a": 0.825, "b": 0.825, "c": 0.5})
    assert with_top_bonus({"a": 0.6}) == {"a": 0.6}
    weights = miner_weights([{"a": 1.0, "b": 0.0}] * 20 + [{"b": 1.0}], lookback_days=15)
    assert sum(weights.values()) == pytest.approx(1.0) and weights["a"] > weights["b"]

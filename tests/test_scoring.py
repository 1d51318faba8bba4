"""Gaia's scores: golden values on tiny hand-computed grids and the properties every score must have."""

from __future__ import annotations

import math

import numpy as np
import pytest

from gaia_dagster.core.scoring.aggregate import miner_weights, overall_score, with_top_bonus
from gaia_dagster.core.scoring.day1 import (
    DAY1_VARIABLES, Day1Field, clone_penalty, day1_score_from_components, score_component, score_day1,
)
from gaia_dagster.core.scoring.era5 import (
    Era5Field, Era5Metric, era5_coverage_failure, era5_field_metrics, era5_score_from_metrics, lead_score,
    score_era5, verification_failure,
)
from gaia_dagster.core.scoring.metrics import (
    acc_centred, acc_uncentred, area_lat_weights, bias_corrected_skill, cos_lat_weights, level_weights,
    weighted_bias, weighted_mse, weighted_rmse,
)

LAT = np.array([60.0, 0.0, -60.0])          # cos weights 0.5, 1, 0.5 -> normalised 0.75, 1.5, 0.75
W = np.array([0.75, 1.5, 0.75])
ROWS = np.array([[1.0], [2.0], [3.0]]) * np.ones((3, 4))   # a 3 x 4 field constant along each row


def anomaly_field(seed: int = 0, shape=(3, 4)) -> np.ndarray:  # noqa: ANN001
    """A random anomaly with zero unweighted mean."""
    x = np.random.default_rng(seed).normal(size=shape)
    return x - x.mean()


# -- weights ---------------------------------------------------------------------------------------
def test_cos_and_area_weights_by_hand():
    np.testing.assert_allclose(cos_lat_weights(LAT), W)
    # bounds 90 | 30 | -30 | -90: sin differences 0.5, 1, 0.5
    np.testing.assert_allclose(area_lat_weights(LAT), W)
    poles = np.array([90.0, 45.0, 0.0, -45.0, -90.0])
    s675, s225 = math.sin(math.radians(67.5)), math.sin(math.radians(22.5))
    raw = np.array([1 - s675, s675 - s225, 2 * s225, s675 - s225, 1 - s675])
    np.testing.assert_allclose(area_lat_weights(poles), raw / raw.mean())
    assert cos_lat_weights(poles)[0] == pytest.approx(0.0, abs=1e-12) and area_lat_weights(poles)[0] > 0


def test_area_weights_are_close_to_cos_weights_away_from_the_poles():
    lat = np.linspace(90, -90, 121)
    cos, area = cos_lat_weights(lat), area_lat_weights(lat)
    assert cos.mean() == pytest.approx(1.0) and area.mean() == pytest.approx(1.0)
    np.testing.assert_allclose(cos[10:-10], area[10:-10], rtol=2e-3)
    assert area[0] > 10 * cos[0]


def test_level_weights_are_half_thicknesses_summing_to_1():
    levels = [50, 100, 150, 200, 250, 300, 400, 500, 600, 700, 850, 925, 1000]
    lw = level_weights(levels)
    assert lw.sum() == pytest.approx(1.0)
    assert lw[0] == pytest.approx(25 / 950) and lw[7] == pytest.approx(100 / 950) and lw[-1] == pytest.approx(37.5 / 950)
    np.testing.assert_allclose(level_weights([850, 500, 700]), [75 / 350, 100 / 350, 175 / 350])
    np.testing.assert_allclose(level_weights([500]), [1.0])


# -- metrics -----------------------------------------------------------------------------------------
def test_weighted_mse_rmse_and_bias_by_hand():
    o = np.zeros((3, 4))
    assert weighted_mse(ROWS, o, W) == pytest.approx((0.75 * 1 + 1.5 * 4 + 0.75 * 9) / 3)   # 4.5
    assert weighted_rmse(ROWS, o, W) == pytest.approx(math.sqrt(4.5))
    assert weighted_bias(ROWS, o, W) == pytest.approx(2.0)
    assert weighted_mse(ROWS.astype(np.float32), o, W) == pytest.approx(4.5)


def test_skill_uses_the_unweighted_mean_in_the_bias_correction():
    o = np.zeros((3, 4))
    f = np.array([[1.0], [1.0], [4.0]]) * np.ones((3, 4))   # unweighted mean error 2, weighted 1.75
    ref = o + 1.0
    # corrected errors -1, -1, 2: MSE_w = (0.75 + 1.5 + 3) / 3 = 1.75; MSE_w(ref) = 1
    assert bias_corrected_skill(f, o, ref, W) == pytest.approx(-0.75)
    assert bias_corrected_skill(o + 5.0, o + np.arange(4.0), o + np.arange(4.0) + 1, W) == pytest.approx(1 - 1.25)


def test_acc_centred_and_uncentred_by_hand():
    w1 = np.ones(2)
    c = np.zeros((2, 2))
    f = np.array([[1.0, 2.0], [3.0, 4.0]])
    o = np.array([[1.0, 2.0], [3.0, 5.0]])
    assert acc_uncentred(f, o, c, w1) == pytest.approx(34 / math.sqrt(30 * 39))
    assert acc_centred(f, o, c, w1) == pytest.approx(np.corrcoef(f.ravel(), o.ravel())[0, 1])
    # with latitude weights: compare with np.average over the 3 x 4 grid
    c3 = np.full((3, 4), 10.0)
    fa, oa = anomaly_field(1), anomaly_field(2) + 0.3
    ww = np.repeat(W[:, None], 4, axis=1)
    fc_, oc_ = fa - np.average(fa, weights=ww), oa - np.average(oa, weights=ww)
    expected = np.average(fc_ * oc_, weights=ww) / math.sqrt(np.average(fc_ ** 2, weights=ww)
                                                             * np.average(oc_ ** 2, weights=ww))
    assert acc_centred(c3 + fa, c3 + oa, c3, W) == pytest.approx(expected)
    assert math.isnan(acc_centred(c3, c3 + oa, c3, W)) and math.isnan(acc_uncentred(c3, c3 + oa, c3, W))


# -- ERA5 ---------------------------------------------------------------------------------------------
def test_perfect_forecast_has_rmse_0_and_skill_1_and_climatology_has_skill_0():
    clim = 280.0 + ROWS
    truth = clim + 3 * anomaly_field(3)
    perfect = era5_field_metrics(24, "2t", None, Era5Field(truth, truth, clim), LAT)
    assert perfect.rmse == 0 and perfect.bias == 0
    assert perfect.skill == pytest.approx(1.0) and perfect.acc == pytest.approx(1.0)
    climate = era5_field_metrics(24, "2t", None, Era5Field(clim, truth, clim), LAT)
    assert climate.skill == pytest.approx(0.0, abs=1e-12) and math.isnan(climate.acc)
    assert climate.rmse == pytest.approx(climate.reference_rmse)
    # golden lead scores: perfect 0.6 + 0.3 + 0.1 = 1; climatology (NaN ACC counts -1) 0 + 0 + 0.1 * 0.5
    assert lead_score([perfect]) == pytest.approx(1.0)
    assert lead_score([climate]) == pytest.approx(0.05)


def test_lead_score_combines_levels_with_level_weights_then_averages_variables():
    rows = [Era5Metric("z", 500, 24, rmse=0.0, bias=0, acc=1.0, skill=1.0, reference_rmse=1.0),
            Era5Metric("z", 700, 24, rmse=1.0, bias=0, acc=0.0, skill=0.5, reference_rmse=1.0),
            Era5Metric("z", 850, 24, rmse=3.0, bias=0, acc=-1.0, skill=-2.0, reference_rmse=1.0),
            Era5Metric("2t", None, 24, rmse=1.0, bias=0, acc=0.6, skill=1.5, reference_rmse=1.0)]
    lw = np.array([100, 175, 75]) / 350                      # 500, 700, 850 hPa
    z_skill = lw @ [1.0, 0.5, 0.0]
    z_acc = lw @ [1.0, 0.5, 0.0]
    z_rmse = lw @ [1.0, 0.5, 0.25]
    expected = 0.6 * (z_skill + 1.0) / 2 + 0.3 * (z_acc + 0.8) / 2 + 0.1 * (z_rmse + 0.5) / 2
    assert lead_score(rows) == pytest.approx(expected)


def test_era5_score_counts_a_missing_lead_as_zero():
    clim = 280.0 + ROWS
    truth = clim + anomaly_field(4)
    rows = [era5_field_metrics(lead, "2t", None, Era5Field(truth, truth, clim), LAT) for lead in (24, 48)]
    result = era5_score_from_metrics(rows, leads=(24, 48, 72, 96))
    assert result.lead_scores == pytest.approx({24: 1.0, 48: 1.0})
    assert result.score == pytest.approx(0.5)
    full = score_era5({(lead, "2t", None): Era5Field(truth, truth, clim) for lead in (24, 48)}, LAT, leads=(24, 48))
    assert full.score == pytest.approx(1.0) and full.failure is None and len(full.metrics) == 2


def test_era5_options_weights_and_uncentred_acc():
    clim = 280.0 + ROWS
    truth = clim + anomaly_field(5)
    fc = truth + 0.1 + 0.2 * anomaly_field(6)
    inputs = {(24, "2t", None): Era5Field(fc, truth, clim)}
    centred = score_era5(inputs, LAT, leads=(24,))
    uncentred = score_era5(inputs, LAT, leads=(24,), acc="uncentred", weights="area")
    assert uncentred.metrics[0].acc == pytest.approx(acc_uncentred(fc, truth, clim, W))
    assert centred.metrics[0].acc == pytest.approx(acc_centred(fc, truth, clim, W))
    assert 0 < centred.score < 1


def test_nan_and_out_of_range_forecasts_fail_with_the_variable_named():
    assert "2t" in verification_failure(np.full((3, 4), np.nan), "2t")
    assert "msl" in verification_failure(np.full((3, 4), 1e13), "msl")
    assert verification_failure(np.full((3, 4), 1e11), "msl") is None
    almost = np.ones((40, 50))
    almost[0, :5] = np.nan                                   # 0.25 % missing
    assert verification_failure(almost, "q700") is None
    assert "q700" in era5_coverage_failure(almost, "q700")
    clim = 280.0 + ROWS
    truth = clim + anomaly_field(7)
    nan_result = score_era5({(24, "2t", None): Era5Field(np.full((3, 4), np.nan), truth, clim)}, LAT)
    assert nan_result.score == 0 and "2t" in nan_result.failure and "24 h" in nan_result.failure
    huge = score_era5({(48, "z", 500): Era5Field(np.full((3, 4), 1e13), truth, clim)}, LAT)
    assert huge.score == 0 and "z500" in huge.failure


def test_a_rare_nan_is_filled_from_climatology():
    lat = np.linspace(80, -80, 40)
    clim = np.full((40, 50), 280.0)
    truth = clim + anomaly_field(8, (40, 50))
    fc = truth.copy()
    fc[3, 7] = np.nan                                        # 0.05 % missing: passes both guards
    assert era5_coverage_failure(fc, "2t") is None
    row = era5_field_metrics(24, "2t", None, Era5Field(fc, truth, clim), lat)
    filled = truth.copy()
    filled[3, 7] = 280.0
    assert row.rmse == pytest.approx(weighted_rmse(filled, truth, cos_lat_weights(lat))) and row.rmse > 0


# -- day-1 ----------------------------------------------------------------------------------------------
def test_day1_golden_perfect_variable_and_failed_variable_contributes_nothing():
    clim = np.zeros((3, 4))
    truth = 5.0 * anomaly_field(9)
    perfect = Day1Field(truth, truth, truth + 1.0, clim)     # d = 1 >= 0.01: no penalty; skill 1; ACC 1
    result = score_day1({("10u", None): perfect}, LAT)
    assert result.score == pytest.approx(1.0) and not result.clone_clamped
    c = result.components[0]
    assert c.clone_distance == pytest.approx(1.0) and c.clone_penalty == 0 and c.rmse == 0 and c.sane
    hot = Day1Field(np.full((3, 4), 400.0), np.full((3, 4), 280.0), np.full((3, 4), 281.0), np.full((3, 4), 280.0))
    both = score_day1({("10u", None): perfect, ("2t", None): hot}, LAT)
    assert both.score == pytest.approx(1.0)
    bad = both.components[1]
    assert not bad.sane and "2t" in bad.reason and "range" in bad.reason and math.isnan(bad.skill)


def test_day1_sanity_failures_name_the_variable():
    clim = np.full((3, 4), 50000.0)
    truth = clim + 300 * anomaly_field(10)
    cases = {
        ("z", 500): (np.full((3, 4), np.nan), "z500"),
        ("t", 850): (np.full((3, 4), 200.0), "t850"),
        ("q", 700): (-0.001 + 0 * truth, "q700"),
    }
    for key, (forecast, name) in cases.items():
        c = score_component(key, Day1Field(forecast, truth, truth + 1, clim), W, 12)
        assert not c.sane and c.reason.startswith(name), c.reason
    anti = score_component(("z", 500), Day1Field(2 * clim - truth, truth, truth, clim), W, 12)
    assert not anti.sane and "pattern correlation" in anti.reason


def test_day1_clone_is_clamped_and_an_honest_forecast_is_not():
    lat = np.linspace(60, -60, 7)
    rng = np.random.default_rng(1)
    base = {("2t", None): 280.0, ("msl", None): 101000.0, ("10u", None): 0.0, ("10v", None): 0.0, ("z", 500): 55000.0}
    scale = {("2t", None): 3, ("msl", None): 800, ("10u", None): 4, ("10v", None): 4, ("z", 500): 600}
    clone, honest = {}, {}
    for key in DAY1_VARIABLES:
        truth = base[key] + scale[key] * rng.normal(size=(7, 12))
        reference = truth + 0.3 * scale[key] * rng.normal(size=(7, 12))
        good = truth + 0.1 * scale[key] * rng.normal(size=(7, 12))
        clim = np.full((7, 12), base[key])
        clone[key] = Day1Field(reference, truth, reference, clim)
        honest[key] = Day1Field(good, truth, reference, clim)
    cloned = score_day1(clone, lat)
    assert cloned.clone_clamped and cloned.score <= 0.05
    assert all(c.clone_penalty == 1.0 and c.clone_distance == 0 for c in cloned.components)
    good = score_day1(honest, lat)
    assert not good.clone_clamped and good.score > 0.5
    assert day1_score_from_components(good.components).score == pytest.approx(good.score)
    assert clone_penalty(50.0, 100.0) == 0.5 and clone_penalty(150.0, 100.0) == 0.0 and clone_penalty(0.0, 1.0) == 1.0


def test_day1_near_clone_within_half_the_threshold_is_clamped():
    clim = np.zeros((3, 4))
    truth = 5.0 * anomaly_field(11)
    reference = truth + 2.0 * anomaly_field(12)
    nudge = reference + 0.06 * np.sign(anomaly_field(13))          # d ~ 0.0036 > D = 0.0025 for 2t
    far = score_day1({("2t", None): Day1Field(280 + nudge, 280 + truth, 280 + reference, 280 + clim)}, LAT)
    assert far.components[0].clone_penalty == 0 and not far.clone_clamped
    near = reference + 0.02                                          # d = 0.0004 < D / 2
    close = score_day1({("2t", None): Day1Field(280 + near, 280 + truth, 280 + reference, 280 + clim)}, LAT)
    assert close.clone_clamped and close.score <= 0.05 and close.components[0].clone_penalty == pytest.approx(0.84)


# -- overall and weights ----------------------------------------------------------------------------------
def test_overall_score():
    assert overall_score(0.8, 0.2) == pytest.approx(0.81)
    assert overall_score(0.8, 0.1) == pytest.approx(0.81)
    assert overall_score(0.8, 0.05) == pytest.approx(0.76)
    assert overall_score(1.0, 1.0) == 1.0 and overall_score(-0.5, 0.0) == 0.0


def test_top_bonus_and_fifteen_day_weights():
    assert with_top_bonus({"a": 0.8, "b": 0.8, "c": 0.5}) == pytest.approx({"a": 0.825, "b": 0.825, "c": 0.5})
    assert with_top_bonus({"a": 0.6, "b": 0.5}) == {"a": 0.6, "b": 0.5}
    history = [{"a": 1.0, "b": 0.0}] * 20
    weights = miner_weights({"b": 1.0}, history, lookback_days=15)
    # window: 14 days a=1.05 (bonus), b=0 + today b=1.05: a = 14.7/15, b = 1.05/15
    assert weights == pytest.approx({"a": 14.7 / 15.75, "b": 1.05 / 15.75})
    assert miner_weights(history + [{"b": 1.0}], lookback_days=15) == pytest.approx(weights)
    assert miner_weights({}, []) == {}
    assert miner_weights({"a": 0.0}, []) == {"a": 0.0}

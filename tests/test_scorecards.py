"""Regional scorecards and ranks with intervals (issue 19): regional metrics against hand-computed
values on small fields, the scorecard leaves the score bit-identical, the CLI and the validator DB
carry it, and the bootstrap and paired test against cases with a known answer."""

from __future__ import annotations

import json
import math
from datetime import datetime, timedelta, timezone

import numpy as np
import pytest

from gaia_dagster.cli import main as cli_main
from gaia_dagster.core.scoring.metrics import lat_weights
from gaia_dagster.core.scoring.ranks import (
    circular_block_draws, geer_inflation, paired_test, rank_intervals, ranked_with_intervals,
)
from gaia_dagster.core.scoring.regions import Region, Scorecard, box_of
from gaia_dagster.core.scoring.stream import FieldPlanes, TruthGrid, score_era5_fields
from gaia_dagster.core.scoring.variables import parse_variables

LAT = np.array([60.0, 30.0, 0.0, -30.0])
LON = np.array([0.0, 90.0, 180.0, 270.0])
BOX = Region("box", 0.0, 60.0, ((80.0, 200.0),))   # rows 60, 30, 0 and columns 90, 180


def test_region_rows_and_columns_include_their_ends_and_wrap_longitude():
    europe = Region("europe", 35.0, 75.0, ((347.5, 360.0), (0.0, 42.5)))
    lon = np.array([0.0, 42.5, 45.0, 347.5, 359.75, -5.0])
    assert europe.columns(lon).tolist() == [True, True, False, True, True, True]
    tropics = Region("tropics", -20.0, 20.0)
    assert tropics.rows(np.array([20.0, 19.0, -20.0, -21.0])).tolist() == [True, True, True, False]


def test_a_band_is_whole_rows_and_a_box_its_row_slice_and_columns():
    assert box_of(Region("tropics", -20.0, 20.0), LAT, LON) is None
    rows, spans = box_of(BOX, LAT, LON)
    assert (rows.start, rows.stop) == (0, 3) and spans == [slice(1, 3)]
    rows, spans = box_of(Region("wrap", -90.0, 90.0, ((260.0, 360.0), (0.0, 10.0))), LAT, LON)
    assert spans == [slice(0, 1), slice(3, 4)] and rows == slice(0, 4)


def test_regional_metrics_match_hand_computed_values():
    truth = np.zeros((4, 4))
    clim = np.full((4, 4), -1.0)               # O' = 1 everywhere
    forecast = np.zeros((4, 4))
    forecast[0, 1], forecast[1, 2], forecast[2, 1], forecast[2, 2] = 2.0, -1.0, 1.0, 3.0
    w = np.array([0.5, 1.0, 1.5, 1.0])
    card = Scorecard(LAT, LON, w, regions=(BOX,), acc="uncentred")
    card.add(24, "2t", None, forecast, truth, clim)
    (row,) = card.rows
    # the box: rows 60, 30, 0 (w 0.5, 1, 1.5) x columns 90, 180; D = F - O
    cells = [(0.5, 2.0), (0.5, 0.0), (1.0, 0.0), (1.0, -1.0), (1.5, 1.0), (1.5, 3.0)]
    total = sum(wt for wt, _ in cells)                         # 6
    mse = sum(wt * d * d for wt, d in cells) / total           # (2 + 1 + 1.5 + 13.5) / 6 = 3
    bias = sum(wt * d for wt, d in cells) / total              # (1 - 1 + 1.5 + 4.5) / 6 = 1
    assert row.rmse == pytest.approx(math.sqrt(3.0)) and mse == pytest.approx(3.0)
    assert row.bias == pytest.approx(bias) and bias == pytest.approx(1.0)
    assert row.skill == pytest.approx(1.0 - 3.0 / 1.0)          # MSE of climatology = <O'^2> = 1
    # uncentred ACC = <F'O'> / sqrt(<F'^2><O'^2>), F' = D + 1: <F'> = 2, <F'^2> = <D^2> + 2<D> + 1 = 6
    assert row.acc == pytest.approx(2.0 / math.sqrt(6.0))
    assert row.reference_rmse == pytest.approx(1.0) and row.skill_gfs is None


def test_regional_skill_against_gfs_and_the_nan_fill():
    truth, clim = np.zeros((4, 4)), np.full((4, 4), 2.0)
    forecast = np.ones((4, 4))
    forecast[0, 0] = np.nan                                     # outside the box: takes the climatology
    reference = np.full((4, 4), 2.0)
    card = Scorecard(LAT, LON, np.ones(4), regions=(Region("global"), BOX))
    card.add(12, "msl", None, forecast, truth, clim, reference)
    world, box = card.rows
    assert box.rmse == pytest.approx(1.0) and box.skill_gfs == pytest.approx(1 - 1 / 4) and box.gfs_rmse == 2.0
    assert world.rmse == pytest.approx(math.sqrt((15 * 1 + 4) / 16))
    assert math.isnan(box.acc)                                  # a flat anomaly has no ACC


def _fields(rng, leads=(24, 48)):
    lat = np.linspace(90, -90, 13)
    lon = np.arange(24) * 15.0
    for lead in leads:
        for variable in ("2t", "msl"):
            o = 280 + rng.normal(size=(13, 24))
            yield FieldPlanes(lead, variable, None, (o + 0.3 * rng.normal(size=o.shape)).astype(np.float32), lat, lon,
                              o.astype(np.float32), (o + rng.normal(size=o.shape)).astype(np.float32))


@pytest.mark.parametrize("profile", ["deployed", "sound"])
def test_the_scorecard_leaves_the_era5_score_bit_identical(profile):
    entries = parse_variables("2t,msl")
    grid = TruthGrid(np.linspace(90, -90, 13), np.arange(24) * 15.0)
    plain = score_era5_fields(_fields(np.random.default_rng(3)), grid, profile, leads=(24, 48), entries=entries)
    card = Scorecard(grid.lat, grid.lon, lat_weights(grid.lat))
    carded = score_era5_fields(_fields(np.random.default_rng(3)), grid, profile, leads=(24, 48), entries=entries,
                               scorecard=card)
    assert carded.score == plain.score and carded.lead_scores == plain.lead_scores and carded.metrics == plain.metrics
    assert len(card.rows) == 2 * 2 * 8
    world = {(r.lead_hours, r.variable): r for r in card.rows if r.region == "global"}
    for m in plain.metrics:   # the global region is the score's own field: same RMSE to rounding
        assert world[(m.lead_hours, m.variable)].rmse == pytest.approx(m.rmse, rel=1e-12)


def test_score_cli_prints_the_scorecard(tmp_path, capsys):
    from gaia_dagster.world.atmosphere import SyntheticAtmosphere
    from gaia_dagster.world.stores import write_climatology, write_forecast, write_truth

    t0 = datetime(2026, 10, 20, tzinfo=timezone.utc)
    world = SyntheticAtmosphere(resolution=3.0)
    write_forecast(tmp_path / "f.zarr", world, "good", t0, leads=[24])
    write_truth(tmp_path / "o.zarr", world, t0, leads=[24])
    write_climatology(tmp_path / "c.zarr", world, [t0 + timedelta(hours=24)])
    args = ["score", "era5", "--forecast", str(tmp_path / "f.zarr"), "--truth", str(tmp_path / "o.zarr"),
            "--climatology", str(tmp_path / "c.zarr"), "--variables", "2t,z500", "--json"]
    cli_main(args)
    plain = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    cli_main([*args, "--scorecard"])
    carded = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert "scorecard" not in plain and carded["score"] == plain["score"]
    regions = {r["region"] for r in carded["scorecard"]}
    assert {"global", "tropics", "northern-extra-tropics", "europe", "east-asia"} <= regions
    assert {(r["variable"], r["level"]) for r in carded["scorecard"]} == {("2t", 0), ("z", 500)}
    assert all(r["skill"] is not None and r["skill"] < 1 for r in carded["scorecard"])


def test_regional_rows_are_stored_once_per_key(repo):
    from gaia_dagster.db.scorecards import record_regional_scores, run_regional_scores

    run, _ = repo.get_or_create_run(datetime(2026, 10, 20, tzinfo=timezone.utc))
    repo.upsert_miner("hk", "http://127.0.0.1:1", uid=3)
    response, _ = repo.create_response(run.id, "hk", "v", "job-hk", "http://127.0.0.1:1")
    row = {"region": "europe", "lead_hours": 24, "variable": "z", "level": 500, "rmse": 1.0, "bias": float("nan"),
           "acc": 0.5, "skill": 0.2, "reference_rmse": 2.0, "skill_gfs": None, "gfs_rmse": None}
    record_regional_scores(repo, response.id, "era5", [row])
    record_regional_scores(repo, response.id, "era5", [{**row, "rmse": 3.0}])
    (stored,) = run_regional_scores(repo, run.id)["hk"]
    assert stored["rmse"] == 3.0 and stored["bias"] is None and stored["region"] == "europe"
    assert run_regional_scores(repo, run.id, "day1") == {}


def test_a_scorecard_reads_only_its_shown_fields(repo):
    """The fields each miner holds come from one query; the rows read are those miners' fields only."""
    from gaia_dagster.db.scorecards import record_regional_scores, run_regional_fields, run_regional_scores

    run, _ = repo.get_or_create_run(datetime(2026, 10, 20, tzinfo=timezone.utc))
    held = {"hk-a": [("t", 850), ("u", 100), ("z", 500)], "hk-b": [("2t", 0), ("t", 850)]}
    for hotkey, fields in held.items():
        response, _ = repo.create_response(run.id, hotkey, "v", f"job-{hotkey}", "http://127.0.0.1:1")
        record_regional_scores(repo, response.id, "era5", [
            {"region": region, "lead_hours": lead, "variable": v, "level": lev, "rmse": 1.0, "reference_rmse": 2.0}
            for region in ("global", "europe") for v, lev in fields for lead in (24, 48)])
    assert run_regional_fields(repo, run.id) == held
    every = run_regional_scores(repo, run.id)
    shown = {"hk-a": [("z", 500)], "hk-b": [("t", 850)]}
    some = run_regional_scores(repo, run.id, fields=shown)
    assert some == {h: [r for r in rows if (r["variable"], r["level"]) in shown[h]] for h, rows in every.items()}
    assert {len(rows) for rows in some.values()} == {4}


# -- ranks --------------------------------------------------------------------------------------
def test_circular_blocks_are_consecutive_days_that_wrap():
    draws = circular_block_draws(5, 3, 200, np.random.default_rng(0))
    assert draws.shape == (200, 5)
    for row in draws:
        assert (row[1] - row[0]) % 5 == 1 and (row[2] - row[1]) % 5 == 1 and (row[4] - row[3]) % 5 == 1


def test_bootstrap_with_one_block_of_every_day_gives_the_observed_rank():
    # A circular block as long as the window is a rotation of it: every draw's mean is the
    # observed mean, so every interval is the observed rank exactly.
    scores = np.random.default_rng(1).uniform(size=(4, 15))
    observed = (-scores.mean(axis=1)).argsort().argsort() + 1
    intervals = rank_intervals(scores, draws=300, block=15)
    assert intervals[:, 0].tolist() == observed.tolist() == intervals[:, 1].tolist()


def test_bootstrap_rank_probability_matches_the_binomial_answer():
    # Two miners; A wins by 1 on 9 of 15 days, B on 6. With blocks of one day A ranks first when
    # more than 7 of the 15 drawn days are A's: P = P(Binomial(15, 0.6) >= 8) = 0.7869.
    a = np.array([1.0] * 9 + [0.0] * 6)
    scores = np.stack([a, 1.0 - a])
    exact = sum(math.comb(15, k) * 0.6 ** k * 0.4 ** (15 - k) for k in range(8, 16))
    low_a, high_a = rank_intervals(scores, draws=20000, level=0.9, block=1, seed=7)[0]
    assert (low_a, high_a) == (1, 2)      # 0.05 < P(A second) = 0.21 < 0.95
    rng = np.random.default_rng(7)
    from gaia_dagster.core.scoring.ranks import ranks_of

    index = circular_block_draws(15, 1, 20000, rng)
    first = (ranks_of(scores[:, index].mean(axis=-1).T)[:, 0] == 1).mean()
    assert first == pytest.approx(exact, abs=0.01)
    # a 50% interval (quantiles 0.25 and 0.75) leaves rank 2 (P = 0.213) out
    assert tuple(rank_intervals(scores, draws=20000, level=0.5, block=1, seed=7)[0]) == (1, 1)


def test_geer_inflation_of_an_ar1_process_is_the_classic_factor():
    # AR(1) with rho: rho2 = rho^2, so phi2 = 0 and k^2 = (1 + rho) / (1 - rho)
    assert geer_inflation(0.5, 0.25) ** 2 == pytest.approx(3.0)
    assert geer_inflation(0.0, 0.0) == 1.0
    assert geer_inflation(1.0, 1.0) == math.inf


def test_paired_test_known_answers():
    assert paired_test(np.ones(15), np.zeros(15)).p_value == 0.0            # a constant lead: certain
    alternating = np.array([1.0, -1.0] * 7 + [0.0])
    assert paired_test(alternating, np.zeros(15)).p_value == pytest.approx(1.0)   # mean 0: no evidence
    # iid-looking differences: k from the sample's own autocorrelations, t with n - 1 dof
    d = np.array([0.3, -0.1, 0.4, 0.2, -0.2, 0.5, 0.1, 0.0, 0.3, -0.1, 0.2, 0.4, -0.3, 0.2, 0.1])
    dev = d - d.mean()
    var = (dev ** 2).sum() / 14
    r1, r2 = (dev[:-1] * dev[1:]).mean() / var, (dev[:-2] * dev[2:]).mean() / var
    from scipy import stats

    stderr = math.sqrt(var / 15) * geer_inflation(r1, r2)
    expected = 2 * stats.t.sf(abs(d.mean()) / stderr, 14)
    assert paired_test(d, np.zeros(15)).p_value == pytest.approx(expected)


def test_ranked_window_orders_by_mean_and_tests_neighbours():
    rng = np.random.default_rng(5)
    days = [{"a": 0.8 + 0.01 * rng.normal(), "b": 0.79 + 0.01 * rng.normal(), "c": 0.3} for _ in range(15)]
    days[3].pop("c")                                   # a day without a score counts 0
    board = ranked_with_intervals(days, "2026-10-20")
    assert [m.hotkey for m in board] == ["a", "b", "c"] or [m.hotkey for m in board] == ["b", "a", "c"]
    top, second, last = board
    assert top.rank_low == 1 and second.rank_high == 2 and (last.rank_low, last.rank_high) == (3, 3)
    assert second.next_significant is True and last.next_hotkey is None
    assert last.mean_score == pytest.approx(0.3 * 14 / 15)
    assert ranked_with_intervals(days, "2026-10-20") == board         # seeded by the run: reproducible


def test_a_region_without_a_cell_on_the_grid_is_left_out():
    card = Scorecard(LAT, LON, np.ones(4), regions=(Region("global"), Region("strip", 70.0, 80.0)))
    card.add(24, "2t", None, np.ones((4, 4)), np.zeros((4, 4)), np.zeros((4, 4)))
    assert [r.region for r in card.rows] == ["global"]


def test_bands_from_the_era5_pass_row_sums_equal_the_scorecards_own():
    from gaia_dagster.core.scoring.fused import fused_metrics

    rng = np.random.default_rng(11)
    lat, lon = np.linspace(90, -90, 19), np.arange(36) * 10.0
    o = 250 + rng.normal(size=(19, 36))
    c, f = o + rng.normal(size=o.shape), o + 0.4 * rng.normal(size=o.shape)
    f[3, 4] = np.nan
    w = lat_weights(lat)
    rows = np.empty((5, 19))
    fused_metrics(f, o, c, w, rows)
    reused, own = Scorecard(lat, lon, w), Scorecard(lat, lon, w)
    reused.add(24, "t", 850, f, o, c, row_sums=rows)
    own.add(24, "t", 850, f, o, c)
    for a, b in zip(reused.rows, own.rows):
        assert a.region == b.region
        assert (a.rmse, a.bias, a.acc, a.skill) == pytest.approx((b.rmse, b.bias, b.acc, b.skill), rel=1e-12)


def test_fewer_than_three_days_give_a_rank_but_no_interval_or_test():
    board = ranked_with_intervals([{"a": 0.9, "b": 0.1}, {"a": 0.8, "b": 0.2}], "run")
    assert [(m.hotkey, m.rank) for m in board] == [("a", 1), ("b", 2)]
    assert all(m.rank_low is None and m.rank_high is None and m.next_p_value is None for m in board)


def _scorecard_rows(rng, regions, fields, leads=(24, 72, 120)):
    """A miner's scorecard rows with some cells lacking a value (NaN change)."""
    rows = []
    for region in regions:
        for variable, level in fields:
            for lead in leads:
                rmse = float(rng.uniform(0.5, 1.5)) if rng.random() > 0.1 else None
                rows.append({"region": region, "variable": variable, "level": level, "lead_hours": lead,
                             "rmse": rmse, "reference_rmse": 1.0})
    return rows


def test_scorecard_pictures_drawn_over_the_shared_background_are_the_full_draws_pixels():
    """Miners of one layout share a figure drawn once; each picture has exactly the pixels of a
    full draw of that miner's scorecard, and a miner of another layout gets its own figure."""
    import base64
    import io

    from PIL import Image

    from gaia_dagster.assets.scorecard_plots import ScorecardFigure, scorecard_charts, scorecard_layout
    from gaia_dagster.core.scoring.regions import WB2_REGIONS

    def pixels(value):
        png = base64.b64decode(value.value.split("base64,")[1].rstrip(")"))
        return np.asarray(Image.open(io.BytesIO(png)).convert("RGBA"))

    rng = np.random.default_rng(3)
    regions = [r.name for r in WB2_REGIONS]
    by_miner = {f"hk{i}": _scorecard_rows(rng, regions, [("z", 500), ("t", 850), ("2t", 0)]) for i in range(3)}
    by_miner["hk-small"] = _scorecard_rows(rng, regions[:3], [("q", 700)], leads=(24, 48))
    assert ScorecardFigure(*scorecard_layout(by_miner["hk0"])).blit    # the shared figure is drawn over
    charts = scorecard_charts(by_miner, {h: f"label {h}" for h in by_miner})
    assert set(charts) == set(by_miner)
    for hotkey, rows in by_miner.items():
        full = ScorecardFigure(*scorecard_layout(rows))
        full.blit = False
        expected = full.picture(rows, f"label {hotkey}")
        assert np.array_equal(pixels(charts[hotkey]), pixels(expected)), hotkey
        assert charts[hotkey].value.split("](")[0] == f"![scorecard label {hotkey}"

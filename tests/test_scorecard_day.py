"""A day's scorecards and 15-day ranks end to end (issue 19): two reference miners on loopback are
verified and scored through the validator's real stages, then ``miner_scores`` and
``regional_scorecards`` are materialized by Dagster; the UI's metadata holds a leaderboard with rank
intervals and a scorecard picture and rows for every scored miner, and ``gaia-dagster leaderboard``
prints the same ranks."""

from __future__ import annotations

import base64
import json
from datetime import timedelta

from dagster import DagsterInstance, materialize

from gaia_dagster.assets.miner_scores import miner_scores
from gaia_dagster.cli import main as cli_main
from gaia_dagster.assets.scorecards import regional_scorecards
from gaia_dagster.core.contract import ERA5_LEAD_HOURS
from gaia_dagster.core.scoring.regions import WB2_REGIONS
from gaia_dagster.db.scorecards import run_regional_scores
from gaia_dagster.resources.validator_db import ValidatorDB
from gaia_dagster.stages.scoring import score_day1_stage, score_era5_stage

from miner_server import signed_client  # noqa: E402
from test_faults import T0  # noqa: E402
from test_freeze import repo, row_of, serve, sources, stack, verify_all  # noqa: E402,F401 - fixtures


def test_a_scored_day_has_scorecards_for_every_miner_and_ranks_with_intervals(repo, sources, stack, tmp_path,
                                                                              capsys):
    good = serve(stack, tmp_path / "good", "//scorecard-good")
    persistence = serve(stack, tmp_path / "persistence", "//scorecard-persistence", profile="persistence")
    miners = [good, persistence]
    assert verify_all(repo, miners, tmp_path) == {m.hotkey: "verified" for m in miners}
    client = signed_client()
    for m in miners:
        score_day1_stage(repo, client, sources, row_of(repo, m))
        score_era5_stage(repo, client, sources, row_of(repo, m), due=ERA5_LEAD_HOURS)
    run = repo.run_for_init_time(T0)

    stored = run_regional_scores(repo, run.id)
    assert set(stored) == {good.hotkey, persistence.hotkey}
    regions = {r["region"] for r in stored[good.hotkey]}
    assert regions == {r.name for r in WB2_REGIONS}
    assert {r["lead_hours"] for r in stored[good.hotkey]} == set(ERA5_LEAD_HOURS)
    day1 = run_regional_scores(repo, run.id, "day1")[good.hotkey]
    assert all(r["skill_gfs"] is not None for r in day1) and {r["lead_hours"] for r in day1} == {12}
    world = {(r["variable"], r["level"], r["lead_hours"]): r for r in stored[good.hotkey] if r["region"] == "global"}
    scores = {(s.variable, s.level, s.lead_hours): s for s in repo.scores(row_of(repo, good).id, "era5")
              if s.variable != "*"}
    assert set(world) == set(scores)
    for key, s in scores.items():    # the global region is the field the score saw
        assert abs(world[key]["rmse"] - s.rmse) <= 1e-9 * max(1.0, s.rmse)

    for back, (a, b) in enumerate([(0.7, 0.2), (0.6, 0.3)], start=1):   # two earlier days: a 3-day window
        earlier, _ = repo.get_or_create_run(T0 - timedelta(days=back))
        for hotkey, score in ((good.hotkey, a), (persistence.hotkey, b)):
            response, _ = repo.create_response(earlier.id, hotkey, "v", f"earlier-{back}-{hotkey}", "http://x")
            repo.record_scores(response.id, "overall", [{"lead_hours": 0, "variable": "*", "level": 0,
                                                         "score": score}])

    with DagsterInstance.ephemeral() as instance:
        result = materialize([miner_scores, regional_scorecards], partition_key=T0.strftime("%Y-%m-%d"),
                             resources={"validator_db": ValidatorDB(url=repo.url)}, instance=instance)
    assert result.success
    board = result.asset_materializations_for_node("miner_scores")[0].metadata
    records = [r.data for r in board["leaderboard"].value.records]
    assert {r["hotkey"] for r in records} == {good.hotkey, persistence.hotkey}
    for r in records:
        assert 1 <= r["rank_low"] <= r["rank_15d"] <= r["rank_high"] <= 2
    first = min(records, key=lambda r: r["rank_15d"])
    assert first["hotkey"] == good.hotkey and first["p_vs_next"] is not None
    assert "data:image/png;base64," in board["rank_intervals"].value

    cards = result.asset_materializations_for_node("regional_scorecards")[0].metadata
    assert cards["miners_with_scorecards"].value == 2
    pictures = [k for k in cards if k.startswith("scorecard_")]
    assert len(pictures) == 2
    for key in pictures:
        png = base64.b64decode(cards[key].value.split("base64,")[1].rstrip(")"))
        assert png.startswith(b"\x89PNG")
    rows = [r.data for r in cards["scorecard"].value.records]
    assert {r["hotkey"] for r in rows} == {good.hotkey, persistence.hotkey}
    assert {r["region"] for r in rows} == {r.name for r in WB2_REGIONS}

    # the same leaderboard from the CLI
    capsys.readouterr()
    assert cli_main(["leaderboard", "--date", T0.strftime("%Y-%m-%d"), "--url", repo.url, "--json"]) == 0
    printed = json.loads(capsys.readouterr().out.strip().splitlines()[-1])["miners"]
    in_ui = sorted(records, key=lambda r: r["rank_15d"])
    assert [(m["hotkey"], m["rank"], m["rank_low"], m["rank_high"]) for m in printed] == \
        [(r["hotkey"], r["rank_15d"], r["rank_low"], r["rank_high"]) for r in in_ui]

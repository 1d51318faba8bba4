"""Progressive ERA5 (issue 9): each lead is scored once ERA5 covers it and T0 + h + 5 d 6 h has
passed; a lead not scored yet counts 0, so the score only rises as leads arrive.

Driven through the validator's real stages against a reference miner on loopback (real HTTP, real
Zarr store, SQLite validator DB), with the clock of the scoring rule set lead by lead.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from gaia_dagster.core.contract import ERA5_LEAD_HOURS
from gaia_dagster.core.retry import retry_policies
from gaia_dagster.core.scoring.era5_leads import (
    ERA5_SCORING_DELAY, first_score_at, lead_is_due, leads_due, leads_to_score, progressive_score,
)
from gaia_dagster.core.states import ResponseStatus
from gaia_dagster.sensors.era5 import run_requests_for
from gaia_dagster.stages.attempts import StageRefused
from gaia_dagster.stages.era5_arrivals import due_leads
from gaia_dagster.stages.scoring import _era5, leaderboard, score_day1_stage, score_era5_stage

from miner_server import signed_client  # noqa: E402
from test_faults import T0  # noqa: E402
from test_freeze import repo, row_of, serve, sources, stack, verify_all  # noqa: E402,F401 - fixtures

UTC = timezone.utc


# -- the rule, pure ----------------------------------------------------------------------------
def test_a_lead_is_due_once_era5_covers_it_and_the_delay_has_passed():
    t0 = datetime(2026, 1, 1, tzinfo=UTC)
    valid = t0 + timedelta(hours=24)
    ready_at = valid + ERA5_SCORING_DELAY
    assert lead_is_due(t0, 24, valid, ready_at)
    assert not lead_is_due(t0, 24, valid, ready_at - timedelta(seconds=1))          # too early
    assert not lead_is_due(t0, 24, valid - timedelta(hours=1), ready_at)            # ERA5 short of T0+h
    assert not lead_is_due(t0, 24, None, ready_at)                                   # no ERA5 at all
    assert first_score_at(t0) == t0 + timedelta(days=6, hours=6)                     # 6.25 days, not 15.25
    assert leads_due(t0, valid + timedelta(days=30), t0 + timedelta(days=8, hours=6)) == (24, 48, 72)
    assert leads_due(t0, t0 + timedelta(hours=50), t0 + timedelta(days=30)) == (24, 48)   # ERA5 binds


def test_missing_leads_count_zero_and_each_lead_is_scored_once():
    assert progressive_score({24: 0.8}) == pytest.approx(0.08)
    assert progressive_score({24: 0.8, 48: 0.6}) == pytest.approx(0.14)
    assert progressive_score({24: 0.8, 999: 1.0}) == pytest.approx(0.08)               # not a required lead
    assert leads_to_score((24, 48, 72), {24: 0.8}) == (48, 72)
    assert leads_to_score((24,), {24: 0.8}) == ()


# -- through the stages ---------------------------------------------------------------------------
def test_leads_arriving_one_by_one_raise_the_score_until_the_job_is_final(repo, sources, stack, tmp_path):
    miner = serve(stack, tmp_path / "miner", "//progressive-era5")
    assert verify_all(repo, [miner], tmp_path) == {miner.hotkey: "verified"}
    client = signed_client()
    score_day1_stage(repo, client, sources, row_of(repo, miner))
    run = repo.run_for_init_time(T0)
    retry = retry_policies(1.0)["era5"]

    before_any = T0 + timedelta(days=6)
    assert due_leads(sources, T0, before_any) == ()
    assert run_requests_for(repo, run, (), 0, retry, before_any) == []
    assert repo.run_by_id(run.id).status == "awaiting_era5"

    totals = []
    for k, lead in enumerate(ERA5_LEAD_HOURS):
        now = T0 + timedelta(hours=lead) + ERA5_SCORING_DELAY
        due = due_leads(sources, T0, now)
        assert due == ERA5_LEAD_HOURS[:k + 1]
        # The sensor: the new lead's truth first, then one run for the miner, keyed by the arrival.
        [truth] = run_requests_for(repo, repo.run_by_id(run.id), due, k, retry, now)
        assert truth.run_key == f"2026-10-20|era5_truth|L{k + 1}"
        [arrival] = run_requests_for(repo, repo.run_by_id(run.id), due, len(due), retry, now)
        assert arrival.run_key == f"2026-10-20|{miner.hotkey}|era5|L{k + 1}|1"
        result = score_era5_stage(repo, client, sources, row_of(repo, miner), due=due)
        assert sorted(result.lead_scores) == list(due)
        totals.append(result.score)
        final = k == len(ERA5_LEAD_HOURS) - 1
        row = row_of(repo, miner)
        assert row.status == (ResponseStatus.ERA5_SCORED if final else ResponseStatus.ERA5_PARTIAL).value
        assert repo.total_score(row.id, "era5") == pytest.approx(result.score)
        # The leaderboard follows each arrival; the day completes only with the last lead.
        [board] = run_requests_for(repo, repo.run_by_id(run.id), due, len(due), retry, now)
        assert board.job_name == "miner_scores_job" and f"|L{k + 1}|" in board.run_key
        [entry] = leaderboard(repo, run.id)
        assert entry.era5_score == pytest.approx(result.score) and entry.overall_score > 0
        assert (repo.run_by_id(run.id).status == "completed") == final
        if not final:   # nothing new to score until the next lead arrives: the run refuses, no claim
            with pytest.raises(StageRefused, match="no new ERA5 lead"):
                score_era5_stage(repo, client, sources, row_of(repo, miner), due=due)

    assert all(b > a for a, b in zip(totals, totals[1:])), totals
    assert totals[0] < 0.1 < totals[-1]
    # Lead by lead ends where one pass over every lead ends, and no score row is duplicated.
    one_pass = _era5(client, sources, row_of(repo, miner), repo.pinned_manifest(row_of(repo, miner).id))
    assert totals[-1] == pytest.approx(one_pass.score, abs=1e-12)
    rows = repo.scores(row_of(repo, miner).id, "era5")
    assert len({(r.lead_hours, r.variable, r.level) for r in rows}) == len(rows)
    assert score_era5_stage(repo, client, sources, row_of(repo, miner)).outcome == "already_scored"

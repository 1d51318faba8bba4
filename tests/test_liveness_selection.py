"""Missed work with a grace window, and the seeded, auditable miner selection."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from gaia_dagster.core.job_ids import weather_job_id
from gaia_dagster.core.liveness import Liveness, record_delivery, record_miss
from gaia_dagster.core.selection import Candidate, miner_order, select_miners
from gaia_dagster.db.repository import ValidatorRepository
from gaia_dagster.sensors.orchestrate import run_selection

T0 = datetime(2026, 10, 20, tzinfo=timezone.utc)


def test_a_miner_goes_inactive_only_after_the_grace_window_and_is_never_penalised_twice():
    state = record_miss(Liveness(), run_id=1)
    assert state.active and state.consecutive_misses == 1 and state.first_missed_run_id == 1
    assert record_miss(state, run_id=1) == state            # the same run reported twice counts once
    state = record_miss(state, run_id=2)
    assert not state.active and state.consecutive_misses == 2 and state.first_missed_run_id == 1
    assert record_delivery(state) == Liveness()


def test_selection_is_seeded_by_the_run_and_skips_inactive_miners():
    hotkeys = [f"hk{i}" for i in range(10)]
    order = miner_order("run-a", hotkeys)
    assert order == miner_order("run-a", list(reversed(hotkeys)))   # the same on every replica
    assert order != miner_order("run-b", hotkeys) and sorted(order) == sorted(hotkeys)
    selection = select_miners("run-a", [Candidate(h, h != "hk3") for h in hotkeys], limit=8)
    assert "hk3" not in selection.selected and ("hk3", "inactive: missed the grace window") in selection.skipped
    assert selection.selected == [h for h in order if h != "hk3"][:8]
    assert len(selection.skipped) == 2



def _fail_job(repo: ValidatorRepository, t0: datetime, hotkey: str) -> int:
    run, _ = repo.get_or_create_run(t0)
    row, _ = repo.create_response(run.id, hotkey, "v", weather_job_id(t0, hotkey), "http://x")
    repo.transition_response(row.id, "created", "failed", error="offline")
    return run.id


def test_failed_jobs_feed_the_grace_window_and_selection_skips_then_resets(repo):
    for h in ("good", "flaky"):
        repo.upsert_miner(h, f"http://{h}")
    first = _fail_job(repo, T0, "flaky")
    repo.record_miner_outcome("flaky", first, delivered=False)  # a second path reporting the same miss
    assert repo.liveness("flaky").consecutive_misses == 1 and repo.liveness("flaky").active
    second = _fail_job(repo, T0 + timedelta(days=1), "flaky")
    assert not repo.liveness("flaky").active and repo.liveness("flaky").first_missed_run_id == first
    third, _ = repo.get_or_create_run(T0 + timedelta(days=2))
    assert run_selection(repo, third, {"good", "flaky"}) == ["good"]
    audit = repo.selection(third.id)
    assert [(a.miner_hotkey, a.selected) for a in audit] == [("good", True), ("flaky", False)]
    assert repo.liveness("flaky").active           # penalty served: the next run starts clean
    assert run_selection(repo, third, {"good", "flaky"}) == ["good"]   # recorded once, not recomputed
    assert second != first

"""Stale work past its lease returns to a retryable state or fails; nothing is duplicated."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from gaia_dagster.core.job_ids import weather_job_id
from gaia_dagster.core.retry import retry_policies
from gaia_dagster.db.repository import ValidatorRepository
from gaia_dagster.stages.reaper import LEASE, reap_stale_work
from gaia_dagster.stages.request import claim_query

T0 = datetime(2026, 10, 20, tzinfo=timezone.utc)
RETRIES = retry_policies(1.0)



def job(repo: ValidatorRepository, hotkey: str):  # noqa: ANN201
    run, _ = repo.get_or_create_run(T0)
    repo.upsert_miner(hotkey, f"http://{hotkey}")
    return repo.create_response(run.id, hotkey, "v", weather_job_id(T0, hotkey), f"http://{hotkey}")[0]


def later() -> datetime:
    return datetime.now(timezone.utc) + LEASE + timedelta(minutes=1)


def test_a_query_claimed_by_a_dead_worker_is_retried_once_the_lease_expires(repo):
    row = job(repo, "hk")
    assert repo.claim_attempt(row.id, "query", "created", 0)       # a worker claims it, then dies
    assert reap_stale_work(repo, RETRIES) == []                     # inside the lease: left alone
    # meanwhile a second worker sees the attempt in flight and does not query again
    outcome = claim_query(repo, repo.response_by_id(row.id), False, RETRIES["query"], datetime.now(timezone.utc))
    assert outcome.outcome == "duplicate_skipped"
    [reaped] = reap_stale_work(repo, RETRIES, now=later())
    assert reaped.action == "query_retry" and repo.response_by_id(row.id).next_attempt_at is not None
    assert reap_stale_work(repo, RETRIES, now=later()) == []        # already waiting: reaped once
    assert claim_query(repo, repo.response_by_id(row.id), False, RETRIES["query"], later()) is None
    assert len(repo.responses()) == 1 and repo.duplicate_jobs() == []


def test_the_last_lost_attempt_fails_the_job_with_the_reason(repo):
    row = job(repo, "hk")
    for attempt in range(3):
        assert repo.claim_attempt(row.id, "query", "created", attempt, next_attempt_at=None)
    [reaped] = reap_stale_work(repo, RETRIES, now=later())
    assert reaped.action == "failed"
    failed = repo.response_by_id(row.id)
    assert failed.status == "failed" and "hk" in failed.error and "lost" in failed.error


def test_a_stuck_scoring_stage_gets_its_next_attempt_due_and_is_kept_for_a_rerun_after_the_last(repo):
    row = job(repo, "hk")
    for old, new in [("created", "fetch_initiated"), ("fetch_initiated", "inference_running"),
                     ("inference_running", "forecast_ready"), ("forecast_ready", "day1_scoring")]:
        repo.transition_response(row.id, old, new)
    actions = []
    for attempt in range(RETRIES["day1"].max_attempts):
        assert repo.claim_attempt(row.id, "day1", "day1_scoring", attempt, next_attempt_at=None)  # a worker dies
        assert reap_stale_work(repo, RETRIES, now=later(), busy=lambda r: True) == []  # a run still holds it
        actions += [r.action for r in reap_stale_work(repo, RETRIES, now=later())]
        if repo.response_by_id(row.id).next_attempt_at is not None:
            assert "lost" in repo.response_by_id(row.id).error
    assert actions == ["retry_due", "retry_due", "stalled"]
    stalled = repo.response_by_id(row.id)
    # A validator-side loss never fails the miner: the job keeps its status for a rerun.
    assert stalled.status == "day1_scoring" and stalled.next_attempt_at is None
    assert "rerun or backfill" in stalled.error
    assert reap_stale_work(repo, RETRIES, now=later()) == []       # reported once

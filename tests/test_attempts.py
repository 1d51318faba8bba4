"""One retry mechanism per scoring stage, and failures that tell the truth (stages.attempts), on
SQLite and PostgreSQL: a validator fault is retried after the backoff and, after the last attempt,
left re-scorable; a miner fault fails the job at once; a run never succeeds without a score."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from gaia_dagster.core.job_ids import weather_job_id
from gaia_dagster.core.retry import retry_policies
from gaia_dagster.stages.attempts import (
    DAY1, ForecastRejected, StageRefused, ValidatorFault, claim, due_retries, run_attempt,
)

T0 = datetime(2026, 10, 20, tzinfo=timezone.utc)
RETRY = retry_policies(1.0)["day1"]          # 3 attempts, 300 / 600 / 1200 s


def ready_job(repo, hotkey: str = "hk"):  # noqa: ANN001, ANN201
    """A job whose forecast was verified (forecast_ready)."""
    run, _ = repo.get_or_create_run(T0)
    row, _ = repo.create_response(run.id, hotkey, "v", weather_job_id(T0, hotkey), f"http://{hotkey}")
    for old, new in [("created", "fetch_initiated"), ("fetch_initiated", "inference_running"),
                     ("inference_running", "forecast_ready")]:
        repo.transition_response(row.id, old, new)
    return repo.response_by_id(row.id)


def attempt(repo, row, work):  # noqa: ANN001, ANN201
    """One day-1 attempt that stores a single score row when ``work`` returns one."""
    def finish(current, score):  # noqa: ANN001
        repo.record_scores(current.id, "day1", [{"lead_hours": 0, "variable": "*", "level": 0, "score": score}])
        repo.transition_response(current.id, DAY1.working, DAY1.done, error=None)

    return run_attempt(repo, row, DAY1, RETRY, work, finish,
                       lambda current: repo.total_score(current.id, "day1"))


def broken_source(_row):  # noqa: ANN001, ANN201
    raise OSError("GFS cache unreadable")


def test_a_validator_fault_is_retried_after_the_backoff_then_left_for_a_rerun(repo):
    row = ready_job(repo)
    for n in range(1, RETRY.max_attempts + 1):
        with pytest.raises(ValidatorFault, match=f"attempt {n} of 3 failed on the validator's side"):
            attempt(repo, repo.response_by_id(row.id), broken_source)
        current = repo.response_by_id(row.id)
        assert current.status == "day1_scoring" and current.day1_attempts == n   # never failed: not the miner's fault
        assert "GFS cache unreadable" in current.error and "hk" in current.error
        if n < RETRY.max_attempts:
            due = current.next_attempt_at
            assert due is not None
            assert due_retries([current], DAY1, RETRY, due - timedelta(seconds=1)) == []
            assert due_retries([current], DAY1, RETRY, due) == [current]
    exhausted = repo.response_by_id(row.id)
    assert exhausted.next_attempt_at is None and "rerun or backfill" in exhausted.error
    assert due_retries([exhausted], DAY1, RETRY, datetime.now(timezone.utc) + timedelta(days=1)) == []
    # The operator reruns the partition once the source is fixed: it is scored, and only once.
    assert attempt(repo, exhausted, lambda _row: 0.75) == 0.75
    scored = repo.response_by_id(row.id)
    assert scored.status == "day1_scored" and scored.error is None and scored.day1_attempts == 4
    assert attempt(repo, scored, broken_source) == 0.75        # a rerun of a scored job: its score, no work
    assert repo.duplicate_scores() == []


def test_a_miner_fault_fails_the_job_at_once_and_a_rerun_says_so(repo):
    row = ready_job(repo)
    with pytest.raises(ForecastRejected):
        attempt(repo, row, lambda _row: (_ for _ in ()).throw(ForecastRejected("miner hk: 2t is all NaN")))
    failed = repo.response_by_id(row.id)
    assert failed.status == "failed" and "2t is all NaN" in failed.error and failed.next_attempt_at is None
    assert due_retries([failed], DAY1, RETRY, datetime.now(timezone.utc) + timedelta(days=1)) == []
    with pytest.raises(StageRefused, match="failed earlier.*2t is all NaN"):
        attempt(repo, failed, lambda _row: 1.0)
    assert repo.total_score(row.id, "day1") is None


def test_nothing_to_score_is_refused_not_reported_as_success(repo):
    run, _ = repo.get_or_create_run(T0)
    row, _ = repo.create_response(run.id, "hk", "v", weather_job_id(T0, "hk"), "http://hk")
    with pytest.raises(StageRefused, match="not ready for day1 scoring"):
        attempt(repo, row, lambda _row: 1.0)
    assert repo.response_by_id(row.id).status == "created"


def test_one_attempt_number_is_claimed_once(repo):
    row = ready_job(repo)
    claimed, number = claim(repo, row, DAY1, None)
    assert number == 1 and claimed.status == "day1_scoring"
    # A worker holding a stale copy of the row (attempts 0) cannot take attempt 1 again.
    assert not repo.claim_attempt(row.id, "day1", "day1_scoring", 0)
    assert repo.response_by_id(row.id).day1_attempts == 1

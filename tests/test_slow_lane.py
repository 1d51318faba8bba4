"""Slow but legal stores are read in their own lane (issue 18: run slots are shared fairly).

A store read in the fast lane that falls below the floor (``store_reader.RateFloor``) stops early
as ``SlowStore``: the job is not failed, spends no attempt, is marked slow and read again, in the
slow lane (no floor, the fetch deadline only), by runs tagged ``gaia/lane: slow``, which the
instance limits. Reference miners on loopback (one with the ``slow_store`` fault: every store file
answered after a wait), the real PostgreSQL validator DB.
"""

from __future__ import annotations

import time

import pytest

from gaia_dagster.core.contract import Grid
from gaia_dagster.resources.miner_client import SlowStore
from gaia_dagster.resources.store_reader import RateFloor
from gaia_dagster.sensors.poll import LANE_TAG, SLOW_LANE, stage_run_request
from gaia_dagster.stages.forecast import verify_forecast
from gaia_dagster.stages.scoring import score_day1_stage

from miner_server import signed_client
from test_validator_faults import DAY1, fleet, repo, request_all, sources, until_ready  # noqa: F401 - fixtures

STORE_DELAY_S = 1.5                            # each of the slow miner's first SLOW_FILES store files
SLOW_FILES = 3
FLOOR = RateFloor(grace_s=1.0, bytes_per_s=1e9)  # a fast lane no store on a 1.5 s-per-file link can keep up with


def test_a_file_counts_at_least_its_credit_so_many_small_chunks_are_not_slow():
    from gaia_dagster.resources.store_reader import MIN_FILE_CREDIT, BoundedFiles, FetchLimits

    files = BoundedFiles(FetchLimits(floor=RateFloor(grace_s=2.0, bytes_per_s=MIN_FILE_CREDIT)), "store")
    files.files_asked, files.spent = 10, 100              # ten tiny chunks: ten seconds, not a tenth of a byte's
    assert files.slow_at() == pytest.approx(files.started + 2.0 + 10.0)
    files.spent = 20 * MIN_FILE_CREDIT                     # bytes beyond the credit count as they are
    assert files.slow_at() == pytest.approx(files.started + 2.0 + 20.0)
SLOW = {"fault": "slow_store", "fault_delay_s": STORE_DELAY_S, "fault_count": SLOW_FILES}


def floored(floor: RateFloor = FLOOR):  # noqa: ANN201 - a MinerClient with the fast lane's floor
    return signed_client(read_timeout=10.0, total_timeout=60.0, store_floor=floor)


def test_a_slow_store_is_verified_in_the_slow_lane_without_failing_or_spending_the_miner(repo, fleet, sources):
    [good, slow] = fleet(2, prefix="lane", per_miner={1: SLOW})
    request_all(repo, [good, slow])
    rows = {r.miner_hotkey: r for r in until_ready(repo, 2)}
    grid = Grid(sources.resolution)

    fast = verify_forecast(repo, floored(), repo.response_by_id(rows[good.hotkey].id), sources.cache_root(), grid)
    assert fast.outcome == "verified" and fast.response.slow_store_at is None

    started = time.monotonic()
    with pytest.raises(SlowStore, match="too slowly for the fast lane") as refused:
        verify_forecast(repo, floored(), repo.response_by_id(rows[slow.hotkey].id), sources.cache_root(), grid)
    assert time.monotonic() - started < FLOOR.grace_s + STORE_DELAY_S + 2   # cut at the floor, not the deadline
    assert slow.hotkey in str(refused.value)
    demoted = repo.response_by_id(rows[slow.hotkey].id)
    assert demoted.status == "inference_running" and demoted.slow_store_at is not None
    assert stage_run_request(demoted, "forecast", 2, "forecast_job").tags[LANE_TAG] == SLOW_LANE
    assert LANE_TAG not in stage_run_request(fast.response, "forecast", 1, "forecast_job").tags

    # the slow lane: the same client, no floor for this job: verified and day-1 scored
    verified = verify_forecast(repo, floored(), demoted, sources.cache_root(), grid)
    assert verified.outcome == "verified"
    scored = score_day1_stage(repo, floored(), sources, repo.response_by_id(demoted.id), retry=DAY1)
    assert scored.outcome == "scored" and scored.score is not None
    assert all(t.to_status != "failed" for t in repo.transitions("response", demoted.id))


def test_a_day1_read_below_the_floor_gives_the_attempt_back_and_is_due_at_once_in_the_slow_lane(repo, fleet, sources):
    # every store file 0.25 s late: a fast lane with a 0.1 s grace cuts the first read it makes
    [slow] = fleet(1, prefix="lane1", per_miner={0: {"fault": "slow_store", "fault_delay_s": 0.25}})
    tight = RateFloor(grace_s=0.1, bytes_per_s=1e9)
    request_all(repo, [slow])
    [row] = until_ready(repo, 1)
    unfloored = signed_client(read_timeout=10.0, total_timeout=60.0)
    verify_forecast(repo, unfloored, repo.response_by_id(row.id), sources.cache_root(), Grid(sources.resolution))

    fast_lane_key = stage_run_request(repo.response_by_id(row.id), "day1", 1, "forecast_job").run_key
    with pytest.raises(SlowStore, match="day1 attempt 1 moved to the slow lane"):
        score_day1_stage(repo, floored(tight), sources, repo.response_by_id(row.id), retry=DAY1)
    waiting = repo.response_by_id(row.id)
    assert waiting.status == "day1_scoring" and waiting.day1_attempts == 0     # the attempt given back
    assert waiting.slow_store_at is not None and waiting.next_attempt_at is not None
    slow_lane = stage_run_request(waiting, "day1", 1, "forecast_job", ["day1_score"])
    assert slow_lane.tags[LANE_TAG] == SLOW_LANE
    assert slow_lane.run_key != fast_lane_key     # the attempt given back is launched again, not skipped as done

    assert score_day1_stage(repo, floored(tight), sources, waiting, retry=DAY1).outcome == "scored"
    assert repo.response_by_id(row.id).day1_attempts == 1

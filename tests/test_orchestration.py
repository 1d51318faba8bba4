"""Orchestration rules of the sensors on a real validator DB: a forecast request that died before its
job existed is launched again (a bounded number of times, never twice at once), and the day's
leaderboard waits for every selected miner to have a job."""

from __future__ import annotations

from datetime import datetime, timezone

from gaia_dagster.core.job_ids import weather_job_id
from gaia_dagster.sensors.orchestrate import MAX_REQUEST_RUNS, forecast_requests, selected_without_job

T0 = datetime(2026, 10, 20, tzinfo=timezone.utc)
MINERS = ["hk-a", "hk-b"]


def seeded_run(repo):  # noqa: ANN001, ANN201
    for hotkey in MINERS:
        repo.upsert_miner(hotkey, f"http://{hotkey}")
    run, _ = repo.get_or_create_run(T0)
    repo.advance_run(run.id, "gfs_ready")
    return run


def keys(requests) -> dict[str, str]:  # noqa: ANN001
    return {r.tags["gaia/miner"]: r.run_key for r in requests}


def test_a_request_run_that_died_before_its_job_existed_is_relaunched_a_bounded_number_of_times(repo):
    run = seeded_run(repo)
    history = {"busy": set(), "ended": {}}

    def request_runs(partition: str) -> tuple[bool, int]:
        return partition in history["busy"], history["ended"].get(partition, 0)

    first = keys(forecast_requests(repo, set(MINERS), request_runs))
    assert first == {h: f"2026-10-20|{h}|query|1" for h in MINERS}
    # hk-a's request ran and opened its job; hk-b's run died before it could (worker killed).
    repo.create_response(run.id, "hk-a", "v", weather_job_id(T0, "hk-a"), "http://hk-a")
    history["ended"]["2026-10-20|hk-b"] = 1
    assert keys(forecast_requests(repo, set(MINERS), request_runs)) == {"hk-b": "2026-10-20|hk-b|query|1|relaunch1"}
    history["busy"].add("2026-10-20|hk-b")                       # the relaunch is queued: never a second
    assert forecast_requests(repo, set(MINERS), request_runs) == []
    history["busy"].clear()
    history["ended"]["2026-10-20|hk-b"] = MAX_REQUEST_RUNS         # every relaunch died too: given up
    assert forecast_requests(repo, set(MINERS), request_runs) == []
    assert selected_without_job(repo, run) == ["hk-b"]           # and the day's leaderboard keeps waiting


def test_the_leaderboard_waits_for_every_selected_miner_to_have_a_job(repo):
    from gaia_dagster.core.contract import ERA5_LEAD_HOURS
    from gaia_dagster.db.repository import now_utc
    from gaia_dagster.sensors.era5 import run_requests_for
    from gaia_dagster.core.retry import retry_policies

    run = seeded_run(repo)
    forecast_requests(repo, set(MINERS), lambda _p: (False, 0))      # records the selection
    row, _ = repo.create_response(run.id, "hk-a", "v", weather_job_id(T0, "hk-a"), "http://hk-a")
    repo.transition_response(row.id, "created", "failed", error="miner hk-a refused")
    retry = retry_policies(1.0)["era5"]
    assert run_requests_for(repo, repo.run_by_id(run.id), ERA5_LEAD_HOURS, 0, retry, now_utc()) == []
    row_b, _ = repo.create_response(run.id, "hk-b", "v", weather_job_id(T0, "hk-b"), "http://hk-b")
    repo.transition_response(row_b.id, "created", "failed", error="miner hk-b refused")
    [board] = run_requests_for(repo, repo.run_by_id(run.id), ERA5_LEAD_HOURS, 0, retry, now_utc())
    assert board.job_name == "miner_scores_job"

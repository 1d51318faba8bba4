"""kill -9 at each stage of a day under the real ``dagster-daemon`` (issue 10, crash consistency).

For each stage, one day with one good reference miner: the process doing that stage's work is
killed with SIGKILL mid-stage, and the day must still complete with the scores an uninterrupted
day gives (computed here through the same stages in process), nothing duplicated, nothing stuck.

- requests: the ``forecast_request_job`` run worker, while it asks the miner for the forecast;
- polling: polls run in the daemon's sensor ticks, so the whole daemon (its code server, zygote
  and runs with it) is killed while the miner is still computing, then started again;
- day-1: the ``forecast_job`` run worker (verification and day-1 scoring).

ERA5 has its own test in ``test_daemon_day.py``.
"""

from __future__ import annotations

import os
import signal
import time
from contextlib import ExitStack
from pathlib import Path

import pytest
from dagster import DagsterRunStatus

from gaia_dagster.core.contract import Grid
from gaia_dagster.db.repository import MinerRecord, ValidatorRepository
from gaia_dagster.fleet import start_fleet
from gaia_dagster.resources.miner import hotkey_for_uri
from gaia_dagster.resources.registry import write_registry
from gaia_dagster.resources.sources import EmbeddedSources
from gaia_dagster.stages.forecast import verify_forecast
from gaia_dagster.stages.poll import poll_in_flight
from gaia_dagster.stages.request import request_forecast
from gaia_dagster.stages.scoring import score_day1_stage, score_era5_stage

from miner_server import TEST_VALIDATOR, running_miner, signed_client  # noqa: E402
from test_daemon_day import DATE, T0, Day  # noqa: E402
from test_faults import POLL, QUERY, wait_for_inference  # noqa: E402

pytestmark = pytest.mark.e2e

RESOLUTION = 2.0
FLEET_NAME = "kill-test-miner"
MINER_URI = f"//{FLEET_NAME}-0"


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory) -> dict[str, float]:
    """The good miner's day-1 and ERA5 scores from the stages run in process, uninterrupted."""
    root = tmp_path_factory.mktemp("uninterrupted")
    repo = ValidatorRepository(f"sqlite:///{root / 'validator.db'}")
    repo.create_schema()
    sources = EmbeddedSources(resolution=RESOLUTION, cache_dir=str(root / "cache"))
    with ExitStack() as stack:
        url, _ = stack.enter_context(running_miner(root / "miner", hotkey_uri=MINER_URI, resolution=RESOLUTION))
        miner = MinerRecord(hotkey_for_uri(MINER_URI), url, None, True, 0)
        client = signed_client()
        repo.upsert_miner(miner.hotkey, miner.base_url)
        assert request_forecast(repo, client, miner, T0, TEST_VALIDATOR, QUERY).outcome == "requested"
        wait_for_inference(client, repo)
        [ready] = [d.response for d in poll_in_flight(repo, client, POLL) if d.action == "ready"]
        verify_forecast(repo, client, ready, root / "verify", Grid(RESOLUTION))
        row = repo.response_for(repo.run_for_init_time(T0).id, miner.hotkey)
        day1 = score_day1_stage(repo, client, sources, row).score
        era5 = score_era5_stage(repo, client, sources, repo.response_by_id(row.id)).score
    return {"day1": day1, "era5": era5}


def kill_first_started_run(day: Day, job_name: str, timeout_s: float = 240.0) -> str:
    """SIGKILL the worker of the first run of ``job_name`` seen executing; returns its run id."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        for run in day.runs():
            if run.job_name == job_name and run.status == DagsterRunStatus.STARTED and "gaia/worker_pid" in run.tags:
                os.kill(int(run.tags["gaia/worker_pid"]), signal.SIGKILL)
                return run.run_id
        time.sleep(0.02)
    raise AssertionError(f"no {job_name} run started within {timeout_s} s")


def kill_daemon_while_polling(day: Day) -> None:
    """SIGKILL the daemon's whole process group once the poll sensor has polled the busy miner,
    then start the daemon again on the same instance."""
    day.wait("the poll sensor to poll the computing miner",
             lambda: any(r.status == "inference_running" and r.poll_attempts >= 1 for r in day.repo.responses()), 240)
    os.killpg(day.processes.daemon.pid, signal.SIGKILL)
    day.processes.daemon.wait()
    day.processes.start()


@pytest.mark.parametrize("stage", ["requests", "polling", "day1"])
def test_a_kill_at_each_stage_leaves_a_day_with_the_uninterrupted_scores(stage, tmp_path, uninterrupted):
    day = Day(tmp_path, resolution=RESOLUTION)
    delay = 8.0 if stage == "polling" else 0.0
    with start_fleet(1, tmp_path / "fleet", resolution=RESOLUTION, profiles=["good"], name=FLEET_NAME,
                     inference_delay_s=delay) as fleet, day.processes:
        write_registry(day.registry, fleet.registry_entries())
        day.processes.launch("daily_seed_job", DATE)
        job = {"requests": "forecast_request_job", "day1": "forecast_job"}.get(stage)
        if job:
            killed = kill_first_started_run(day, job)
        else:
            killed = None
            kill_daemon_while_polling(day)
        if killed:
            day.wait("run monitoring to fail the killed run",
                     lambda: day.instance.get_run_by_id(killed).status == DagsterRunStatus.FAILURE, 120)
        day.wait("the day to complete after the kill", lambda: day.run_status() == "completed", 420)

        repo = day.repo
        [row] = repo.responses()
        assert row.miner_hotkey == fleet.miners[0].hotkey and row.status == "era5_scored"
        assert repo.total_score(row.id, "day1") == pytest.approx(uninterrupted["day1"], abs=1e-12)
        assert repo.total_score(row.id, "era5") == pytest.approx(uninterrupted["era5"], abs=1e-12)
        assert repo.duplicate_jobs() == [] and repo.job_id_mismatches() == [] and repo.duplicate_scores() == []
        assert len(repo.all_runs()) == 1
        day.wait("every run to end", day.all_ended, 120)
        if job:   # the killed stage was done again by a later run of the same job, which succeeded
            partition = f"{DATE}|{row.miner_hotkey}"
            again = [r for r in day.runs(**{"dagster/partition": partition}) if r.job_name == job and r.run_id != killed]
            assert any(r.status == DagsterRunStatus.SUCCESS for r in again), [(r.job_name, r.status) for r in again]
        assert not any(r.status in ("day1_scoring", "era5_scoring", "created") for r in repo.responses())

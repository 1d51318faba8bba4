"""Whole days under the real ``dagster-daemon``: the project's instance config (forking run launcher,
four runs at once, run monitoring), reference miners on loopback, the day launched as an operator
launches it. Nothing drives the day but Dagster's own schedule, sensors and run queue."""

from __future__ import annotations

import os
import shutil
import signal
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable

import pytest
from dagster import (
    AssetCheckKey, AssetKey, DagsterEventType, DagsterInstance, DagsterRunStatus, EventRecordsFilter, MetadataValue,
    RunsFilter,
)

from test_ui_metadata import PNG_MAGIC, SVG, png_of, svg_of, ui_records

from gaia_dagster.db.repository import ValidatorRepository
from gaia_dagster.fleet import start_fleet
from gaia_dagster.resources.registry import write_registry
from gaia_dagster.runtime.daemon import DagsterProcesses, process_tree

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parent.parent
DATE = "2026-10-20"
T0 = datetime(2026, 10, 20, tzinfo=timezone.utc)
ENDED = (DagsterRunStatus.SUCCESS, DagsterRunStatus.FAILURE, DagsterRunStatus.CANCELED)


class Day:
    """A fresh instance (the project's dagster.yaml), its validator DB, and the daemon on it."""

    def __init__(self, tmp_path: Path, resolution: float):
        self.home = tmp_path / "dagster_home"
        self.home.mkdir()
        shutil.copy(ROOT / "dagster.yaml", self.home / "dagster.yaml")
        self.db_url = f"sqlite:///{tmp_path / 'validator.db'}"
        self.registry = tmp_path / "miners.json"
        self.env = {
            "GAIA_DB_URL": self.db_url, "GAIA_REGISTRY": str(self.registry), "GAIA_HOME": str(tmp_path / "gaia"),
            "GAIA_RESOLUTION": str(resolution), "GAIA_RETRY_SCALE": "0.01", "GAIA_MINER_TIMEOUT_S": "2",
            "GAIA_SENSOR_INTERVAL_S": "1", "GAIA_FIRST_DATE": DATE,
        }
        self.processes = DagsterProcesses(self.home, self.env)
        self.repo = ValidatorRepository(self.db_url)
        self.repo.create_schema()
        self.instance = DagsterInstance.from_config(str(self.home))

    def wait(self, what: str, done: Callable[[], bool], timeout_s: float = 300.0) -> None:
        deadline = time.monotonic() + timeout_s
        while not done():
            if time.monotonic() > deadline or not self.processes.alive():
                log = (self.home / "logs" / "dagster-daemon.log")
                tail = log.read_text()[-3000:] if log.exists() else ""
                raise AssertionError(f"timed out waiting for {what}; jobs: "
                                     f"{[(r.miner_hotkey[:8], r.status, r.error) for r in self.repo.responses()]}\n{tail}")
            time.sleep(0.2)

    def run_status(self) -> str | None:
        run = self.repo.run_for_init_time(T0)
        return run.status if run else None

    def runs(self, **tags: str) -> list:
        return self.instance.get_runs(RunsFilter(tags=tags) if tags else None)

    def all_ended(self) -> bool:
        return all(r.status in ENDED for r in self.instance.get_runs())


def _cmdline(pid: int) -> bytes:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return b""


def max_runs_at_once(instance: DagsterInstance, **tags: str) -> int:
    """The most runs (with ``tags``, when given) that were executing at the same moment, from their
    start and end times."""
    edges = []
    for record in instance.get_run_records(RunsFilter(tags=tags) if tags else None):
        if record.start_time and record.end_time:
            edges += [(record.start_time, 1), (record.end_time, -1)]
    running = peak = 0
    for _, step in sorted(edges):
        running += step
        peak = max(peak, running)
    return peak


def test_a_day_under_the_daemon_scores_rerunning_it_duplicates_nothing(tmp_path):
    day = Day(tmp_path, resolution=10.0)
    profiles = ["good", "persistence", "clone", "nan", "offline"]
    with start_fleet(len(profiles), tmp_path / "fleet", resolution=10.0, profiles=profiles) as fleet, day.processes:
        write_registry(day.registry, fleet.registry_entries())
        code_server = day.processes.code_server.pid
        started = time.monotonic()
        day.processes.launch("daily_seed_job", DATE)
        day.wait("the day's leaderboard", lambda: day.run_status() == "completed")
        # The daemon loaded the code location from the one shared code server the whole day: it
        # started none of its own, and the shared one was never replaced (a daemon managing its own
        # replaces it every 60 s, so the check waits out one such refresh on a fast machine).
        time.sleep(max(0.0, 65 - (time.monotonic() - started)))
        assert day.processes.code_server.pid == code_server and day.processes.code_server.poll() is None
        assert not [p for p in process_tree(day.processes.daemon.pid) if b"api\0grpc" in _cmdline(p)]
        repo = day.repo
        run = repo.run_for_init_time(T0)
        by_profile = {m.profile: repo.response_for(run.id, m.hotkey) for m in fleet.miners}
        overall = {p: repo.total_score(r.id, "overall") for p, r in by_profile.items()}
        assert by_profile["good"].status == "era5_scored"
        assert overall["good"] == max(overall.values()) and overall["good"] > overall["persistence"]
        assert repo.total_score(by_profile["clone"].id, "day1") <= 0.05
        assert by_profile["nan"].status == "failed" and "2t" in by_profile["nan"].error
        offline = by_profile["offline"]
        assert offline.status == "failed" and offline.miner_hotkey in offline.error
        assert all(0.0 <= v <= 1.0 for v in overall.values())

        day.wait("every run to end", day.all_ended, 60)
        # The daemon the tests start never fires the 18:00 UTC schedule (stopped explicitly on the
        # instance, whatever the clock), runs without telemetry, and its logs stay.
        from dagster._core.scheduler.instigation import InstigatorStatus

        assert [s.status for s in day.instance.all_instigator_state() if s.name == "daily_forecast_schedule"] == [
            InstigatorStatus.STOPPED]
        assert b"DAGSTER_DISABLE_TELEMETRY=1" in Path(f"/proc/{day.processes.daemon.pid}/environ").read_bytes()
        assert (day.home / "logs" / "dagster-daemon.log").stat().st_size > 0
        # Runs really ran side by side under the daemon.
        assert max_runs_at_once(day.instance) >= 2
        # A failed miner shows as failed, not green: its last forecast_request run failed with its reason.
        partition = f"{DATE}|{offline.miner_hotkey}"
        [last, *_] = day.runs(**{"dagster/partition": partition})
        assert last.status == DagsterRunStatus.FAILURE
        assert partition not in day.instance.get_materialized_partitions(AssetKey("forecast_request"))
        # An all-NaN forecast: day-1 skips every variable as Gaia's does (score 0); ERA5's guard fails it.
        nan_partition = f"{DATE}|{by_profile['nan'].miner_hotkey}"
        assert repo.total_score(by_profile["nan"].id, "day1") == 0.0
        assert nan_partition not in day.instance.get_materialized_partitions(AssetKey("era5_score"))
        for profile in ("good", "persistence", "clone"):
            assert f"{DATE}|{by_profile[profile].miner_hotkey}" in \
                day.instance.get_materialized_partitions(AssetKey("era5_score"))
        # The integrity checks ran per batch (requests settled; the leaderboard), never per miner, and held.
        for check in ("no_duplicate_jobs", "job_ids_deterministic", "no_copied_forecasts"):
            key = AssetCheckKey(AssetKey("forecast_request"), check)
            record = day.instance.event_log_storage.get_latest_asset_check_execution_by_key([key])[key]
            assert record.status.value == "SUCCEEDED", (check, record.status)
        evaluations = day.instance.get_event_records(
            EventRecordsFilter(event_type=DagsterEventType.ASSET_CHECK_EVALUATION), limit=1000)
        check_runs = {e.run_id for e in evaluations}
        assert check_runs and all(day.instance.get_run_by_id(r).job_name in ("integrity_checks_job", "miner_scores_job")
                                  for r in check_runs)
        # Every run was a fork of the zygote, and says what it cost.
        assert all("gaia/worker_pid" in r.tags and float(r.tags["gaia/worker_cpu_s"]) >= 0 for r in day.runs()
                   if r.status == DagsterRunStatus.SUCCESS)

        assert_asset_pages_show_uids_tables_and_charts(day, by_profile["good"].miner_hotkey)

        # The operator reruns the day and backfills two miners: same run, same jobs, nothing new.
        jobs_before, runs_before = len(repo.responses()), len(repo.all_runs())
        dagster_runs = len(day.runs())
        day.processes.launch("daily_seed_job", DATE)
        day.processes.launch("forecast_request_job", f"{DATE}|{by_profile['good'].miner_hotkey}")
        day.processes.launch("forecast_request_job", partition)
        day.wait("the reruns", lambda: len(day.runs()) >= dagster_runs + 3 and day.all_ended(), 120)
        assert (len(repo.responses()), len(repo.all_runs())) == (jobs_before, runs_before)
        assert repo.duplicate_jobs() == [] and repo.job_id_mismatches() == []
        good_rerun = day.runs(**{"dagster/partition": f"{DATE}|{by_profile['good'].miner_hotkey}"})[0]
        offline_rerun = day.runs(**{"dagster/partition": partition})[0]
        assert good_rerun.job_name == "forecast_request_job" and good_rerun.status == DagsterRunStatus.SUCCESS
        assert offline_rerun.job_name == "forecast_request_job" and offline_rerun.status == DagsterRunStatus.FAILURE
        assert repo.duplicate_counts().get(("forecast_request", "detected"), 0) >= 1


def assert_asset_pages_show_uids_tables_and_charts(day: Day, good: str) -> None:
    """What an operator sees on the asset pages: each miner's uid and full hotkey, typed tables
    the UI can parse (nulls, never NaN), and the two charts."""
    uid_of = {m.hotkey: m.uid for m in day.repo.miners()}

    def latest(asset_key: str, partition: str) -> dict:
        records = day.instance.fetch_materializations(AssetKey(asset_key), limit=100).records
        return next(r for r in records if r.partition_key == partition).asset_materialization.metadata

    for key in ("forecast_request", "miner_forecast", "day1_score", "era5_score"):
        metadata = latest(key, f"{DATE}|{good}")
        assert metadata["miner_hotkey"] == MetadataValue.text(good), key
        assert metadata["miner_uid"] == MetadataValue.int(uid_of[good]), key
    era5 = latest("era5_score", f"{DATE}|{good}")
    assert len(list(svg_of(era5["score_by_lead"]).iter(f"{SVG}circle"))) == 10
    assert [r["lead_hours"] for r in ui_records(era5["lead_scores"])] == list(range(24, 241, 24))
    assert ui_records(era5["metrics"])
    scores = latest("miner_scores", DATE)
    board = ui_records(scores["leaderboard"])
    assert {r["hotkey"]: r["uid"] for r in board} == uid_of
    assert board[0]["hotkey"] == good and board[0]["rank"] == 1
    failed = [r for r in board if r["status"] == "failed"]
    assert failed and all(r["error"] and r["era5_score"] is None for r in failed)
    assert png_of(scores["leaderboard_chart"]).startswith(PNG_MAGIC)
    assert {r["hotkey"] for r in ui_records(scores["selection"])} == set(uid_of)


def test_a_run_worker_killed_mid_score_fails_its_run_and_the_partition_is_scored_once(tmp_path):
    day = Day(tmp_path, resolution=2.0)
    with start_fleet(1, tmp_path / "fleet", resolution=2.0, profiles=["good"]) as fleet, day.processes:
        write_registry(day.registry, fleet.registry_entries())
        hotkey = fleet.miners[0].hotkey
        partition = f"{DATE}|{hotkey}"
        day.processes.launch("daily_seed_job", DATE)
        day.wait("ERA5 scoring to start", lambda: [r.status for r in day.repo.responses()] == ["era5_scoring"])
        scoring = [r for r in day.runs(**{"dagster/partition": partition}) if r.job_name == "era5_score_job"]
        assert len(scoring) == 1 and scoring[0].status == DagsterRunStatus.STARTED
        pid = int(day.instance.get_run_by_id(scoring[0].run_id).tags["gaia/worker_pid"])
        os.kill(pid, signal.SIGKILL)

        # Run monitoring sees the worker gone and fails the run; the reaper sees the run that held the
        # job end without moving it on and makes the next attempt due; the ERA5 sensor launches it.
        day.wait("run monitoring to fail the killed run",
                 lambda: day.instance.get_run_by_id(scoring[0].run_id).status == DagsterRunStatus.FAILURE, 120)
        day.wait("the next attempt to score the partition and the day to complete",
                 lambda: day.run_status() == "completed", 240)
        row = day.repo.responses()[0]
        assert row.status == "era5_scored" and row.era5_attempts == 2
        score = day.repo.total_score(row.id, "era5")
        assert score > 0.5 and day.repo.duplicate_scores() == []
        attempts = [r for r in day.runs(**{"dagster/partition": partition}) if r.job_name == "era5_score_job"]
        assert [r.status for r in attempts] == [DagsterRunStatus.SUCCESS, DagsterRunStatus.FAILURE]
        assert [r.tags.get("gaia/attempt") for r in attempts] == ["2", "1"]

        # The operator reruns the partition anyway: the run succeeds on the score the job holds,
        # and nothing is scored twice.
        rows_before = len(day.repo.scores(row.id))
        day.processes.launch("era5_score_job", partition)
        day.wait("the operator's rerun", lambda: len([r for r in day.runs(**{"dagster/partition": partition})
                                                       if r.job_name == "era5_score_job"]) == 3 and day.all_ended(), 120)
        rerun = day.runs(**{"dagster/partition": partition})[0]
        assert rerun.status == DagsterRunStatus.SUCCESS
        assert len(day.repo.scores(row.id)) == rows_before and day.repo.total_score(row.id, "era5") == score

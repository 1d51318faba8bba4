"""The Dagster definitions on a test instance: load, registry sensor, schedule tick, one whole day."""

from __future__ import annotations

import time
from datetime import datetime, timedelta, timezone

import pytest
from dagster import AssetCheckKey, AssetKey, Definitions, instance_for_test

from gaia_dagster.assets.partitions import miner_partitions
from gaia_dagster.core.registry import RegistryEntry
from gaia_dagster.definitions import build_definitions
from gaia_dagster.driver import DayDriver
from gaia_dagster.fleet import start_fleet
from gaia_dagster.resources.miner import MinerAccess
from gaia_dagster.resources.registry import MinerRegistry, write_registry
from gaia_dagster.resources.sources import WeatherSources
from gaia_dagster.resources.validator_db import ValidatorDB

DATE = "2026-10-20"
T0 = datetime(2026, 10, 20, tzinfo=timezone.utc)
RESOLUTION = 10.0


def make_defs(tmp_path, resolution: float = RESOLUTION) -> Definitions:
    return build_definitions({
        "validator_db": ValidatorDB(url=f"sqlite:///{tmp_path / 'validator.db'}"),
        "miner_registry": MinerRegistry(path=str(tmp_path / "miners.json")),
        "miner_access": MinerAccess(retry_scale=0.002, read_timeout_s=2.0, connect_timeout_s=2.0),
        "sources": WeatherSources(resolution=resolution, cache_dir=str(tmp_path / "cache")),
    })


def test_definitions_load_with_every_asset_check_sensor_and_schedule(tmp_path):
    defs = make_defs(tmp_path)
    Definitions.validate_loadable(defs)
    graph = defs.resolve_asset_graph()
    assert {k.to_user_string() for k in graph.get_all_asset_keys()} == {
        "gfs_seed", "forecast_request", "miner_forecast", "day1_score", "era5_truth", "era5_score", "miner_scores"}
    assert {c.name for c in graph.asset_check_keys} == {"no_duplicate_jobs", "job_ids_deterministic"}
    assert defs.resolve_schedule_def("daily_forecast_schedule").cron_schedule == "0 18 * * *"
    for name in ("miner_registry_sensor", "miner_orchestration_sensor", "forecast_poll_sensor",
                 "era5_availability_sensor"):
        defs.resolve_sensor_def(name)


def test_registry_sensor_adds_partitions_and_never_deletes(tmp_path):
    defs = make_defs(tmp_path)
    entries = [RegistryEntry("hk-a", "http://127.0.0.1:9001"), RegistryEntry("hk-b", "http://127.0.0.1:9002"),
               RegistryEntry("hk-a", "http://127.0.0.1:9003"), RegistryEntry("hk-c", "http://127.0.0.1:9002")]
    write_registry(tmp_path / "miners.json", entries)
    with instance_for_test() as instance:
        driver = DayDriver(instance, defs)
        driver.tick_sensor("miner_registry_sensor")
        assert sorted(instance.get_dynamic_partitions(miner_partitions.name)) == ["hk-a", "hk-b"]
        repo = defs.resources["validator_db"].repo
        assert sum(repo.duplicate_counts().values()) == 2
        write_registry(tmp_path / "miners.json", entries[:1])
        driver.tick_sensor("miner_registry_sensor")
        assert sorted(instance.get_dynamic_partitions(miner_partitions.name)) == ["hk-a", "hk-b"]
        assert [m.hotkey for m in repo.miners()] == ["hk-a", "hk-b"]


def test_schedule_tick_seeds_the_day_once(tmp_path):
    defs = make_defs(tmp_path)
    with instance_for_test() as instance:
        driver = DayDriver(instance, defs)
        requests = driver.tick_schedule("daily_forecast_schedule", T0 + timedelta(hours=18))
        assert [(r.partition_key, r.job_name, r.run_key) for r in requests] == [
            (DATE, "daily_seed_job", f"{DATE}|gfs_seed")]
        assert driver.launch(requests[0]).success
        assert driver.launch(requests[0]).skipped
        run = defs.resources["validator_db"].repo.run_for_init_time(T0)
        assert run is not None and run.status == "gfs_ready"


def drive(driver: DayDriver, repo, timeout_s: float = 240.0) -> None:  # noqa: ANN001
    """Tick sensors and run what they ask until the day's run is complete (or time is up)."""
    deadline = time.monotonic() + timeout_s
    for name in ("miner_registry_sensor",):
        driver.tick_sensor(name)
    driver.launch_all(driver.tick_schedule("daily_forecast_schedule", T0 + timedelta(hours=18)))
    driver.launch_all(driver.tick_sensor("miner_orchestration_sensor"))
    while time.monotonic() < deadline:
        run = repo.run_for_init_time(T0)
        if run.status == "completed":
            return
        launched = driver.launch_all(driver.tick_sensor("forecast_poll_sensor"))
        launched += driver.launch_all(driver.tick_sensor("era5_availability_sensor"))
        if not [x for x in launched if not x.skipped]:
            time.sleep(0.3)
    raise AssertionError(f"day not complete: {repo.run_for_init_time(T0)} {repo.responses()}")


@pytest.mark.e2e
def test_a_whole_day_end_to_end_and_a_rerun_duplicates_nothing(tmp_path):
    defs = make_defs(tmp_path)
    repo = defs.resources["validator_db"].repo
    profiles = ["good", "persistence", "clone", "nan", "offline"]
    with start_fleet(len(profiles), tmp_path / "fleet", resolution=RESOLUTION, profiles=profiles) as fleet, \
            instance_for_test() as instance:
        write_registry(tmp_path / "miners.json", fleet.registry_entries())
        driver = DayDriver(instance, defs)
        drive(driver, repo)
        by_profile = {m.profile: repo.response_for(repo.run_for_init_time(T0).id, m.hotkey) for m in fleet.miners}
        overall = {p: repo.total_score(r.id, "overall") for p, r in by_profile.items()}
        assert by_profile["good"].status == "era5_scored"
        assert overall["good"] == max(overall.values()) and overall["good"] > overall["persistence"]
        assert repo.total_score(by_profile["clone"].id, "day1") <= 0.05
        assert by_profile["nan"].status == "failed" and "2t" in by_profile["nan"].error
        assert by_profile["offline"].status == "failed" and by_profile["offline"].miner_hotkey in \
            by_profile["offline"].error
        for profile in ("good", "persistence", "clone"):
            hotkey = by_profile[profile].miner_hotkey
            assert f"{DATE}|{hotkey}" in instance.get_materialized_partitions(AssetKey("day1_score"))
        for check in ("no_duplicate_jobs", "job_ids_deterministic"):
            key = AssetCheckKey(AssetKey("forecast_request"), check)
            record = instance.event_log_storage.get_latest_asset_check_execution_by_key([key])[key]
            assert record.status.value == "SUCCEEDED", (check, record.status)

        # A rerun of the same day (schedule, orchestration, a backfill of forecast_request) lands on the
        # same run and the same jobs.
        runs, jobs = len(repo.all_runs()), len(repo.responses())
        driver.launch_all(driver.tick_schedule("daily_forecast_schedule", T0 + timedelta(hours=18)))
        assert driver.tick_sensor("miner_orchestration_sensor") == []
        good = by_profile["good"]
        backfill = driver.launch(_forecast_request(DATE, good.miner_hotkey))
        assert backfill.success
        assert (len(repo.all_runs()), len(repo.responses())) == (runs, jobs)
        assert repo.duplicate_jobs() == [] and repo.job_id_mismatches() == []
        assert repo.duplicate_counts().get(("forecast_request", "detected"), 0) >= 1


def _forecast_request(date_key: str, hotkey: str):  # noqa: ANN202
    from dagster import RunRequest

    from gaia_dagster.assets.partitions import date_miner_key

    return RunRequest(run_key=f"backfill|{date_key}|{hotkey}", partition_key=date_miner_key(date_key, hotkey),
                      job_name="forecast_request_job")

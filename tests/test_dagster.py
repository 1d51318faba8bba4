"""The Dagster definitions on a test instance: load, registry sensor tick, schedule tick.

A whole day runs under the real daemon in test_daemon_day.py."""

from __future__ import annotations

import pytest

from datetime import datetime, timedelta, timezone

from dagster import (
    Definitions, RunRequest, build_schedule_context, build_sensor_context, instance_for_test,
    partition_loading_context,
)

from gaia_dagster.assets.partitions import miner_partitions
from gaia_dagster.core.registry import RegistryEntry
from gaia_dagster.definitions import build_definitions
from gaia_dagster.resources.miner import MinerAccess
from gaia_dagster.resources.registry import MinerRegistry, write_registry
from gaia_dagster.resources.sources import EmbeddedSources
from gaia_dagster.resources.validator_db import ValidatorDB

DATE = "2026-10-20"
T0 = datetime(2026, 10, 20, tzinfo=timezone.utc)
RESOLUTION = 10.0


def make_defs(tmp_path, resolution: float = RESOLUTION) -> Definitions:
    return build_definitions({
        "validator_db": ValidatorDB(url=f"sqlite:///{tmp_path / 'validator.db'}"),
        "miner_registry": MinerRegistry(path=str(tmp_path / "miners.json")),
        "miner_access": MinerAccess(retry_scale=0.002, read_timeout_s=2.0, connect_timeout_s=2.0),
        "sources": EmbeddedSources(resolution=resolution, cache_dir=str(tmp_path / "cache")),
    })


def tick_sensor(instance, defs: Definitions, name: str) -> list[RunRequest]:  # noqa: ANN001
    """Evaluate one tick of a sensor as the daemon does (dynamic partitions come from the instance)."""
    context = build_sensor_context(instance=instance, definitions=defs, sensor_name=name, resources=defs.resources)
    with partition_loading_context(dynamic_partitions_store=instance):
        return list(defs.resolve_sensor_def(name).evaluate_tick(context).run_requests or [])


def tick_schedule(instance, defs: Definitions, name: str, at: datetime) -> list[RunRequest]:  # noqa: ANN001
    """Evaluate the schedule as at ``at``."""
    context = build_schedule_context(instance=instance, scheduled_execution_time=at,
                                     repository_def=defs.get_repository_def(), resources=defs.resources)
    with partition_loading_context(dynamic_partitions_store=instance):
        return list(defs.resolve_schedule_def(name).evaluate_tick(context).run_requests or [])


def test_definitions_load_with_every_asset_check_sensor_and_schedule(tmp_path):
    defs = make_defs(tmp_path)
    Definitions.validate_loadable(defs)
    graph = defs.resolve_asset_graph()
    assert {k.to_user_string() for k in graph.get_all_asset_keys()} == {
        "gfs_seed", "forecast_request", "miner_forecast", "day1_score", "era5_truth", "era5_score", "miner_scores",
        "regional_scorecards", "chain_weights", "day_view"}
    assert {c.name for c in graph.asset_check_keys} == {"no_duplicate_jobs", "job_ids_deterministic", "no_copied_forecasts"}
    assert defs.resolve_schedule_def("daily_forecast_schedule").cron_schedule == "0 18 * * *"
    for name in ("miner_registry_sensor", "miner_orchestration_sensor", "forecast_poll_sensor",
                 "era5_availability_sensor", "weights_cadence_sensor", "day_view_sensor"):
        defs.resolve_sensor_def(name)


def test_registry_sensor_adds_partitions_and_never_deletes(tmp_path):
    defs = make_defs(tmp_path)
    entries = [RegistryEntry("hk-a", "http://127.0.0.1:9001"), RegistryEntry("hk-b", "http://127.0.0.1:9002"),
               RegistryEntry("hk-a", "http://127.0.0.1:9003"), RegistryEntry("hk-c", "http://127.0.0.1:9002")]
    write_registry(tmp_path / "miners.json", entries)
    with instance_for_test() as instance:
        tick_sensor(instance, defs, "miner_registry_sensor")
        assert sorted(instance.get_dynamic_partitions(miner_partitions.name)) == ["hk-a", "hk-b"]
        repo = defs.resources["validator_db"].repo
        assert sum(repo.duplicate_counts().values()) == 2
        write_registry(tmp_path / "miners.json", entries[:1])
        tick_sensor(instance, defs, "miner_registry_sensor")
        assert sorted(instance.get_dynamic_partitions(miner_partitions.name)) == ["hk-a", "hk-b"]
        assert [m.hotkey for m in repo.miners()] == ["hk-a", "hk-b"]


def test_a_missing_unreadable_or_malformed_registry_keeps_the_last_good_list(tmp_path):
    """The registry file gone, a directory in its place, or broken JSON: the tick fails naming the
    file and the problem, and every miner listed before stays listed (and selectable)."""
    import shutil

    defs = make_defs(tmp_path)
    path = tmp_path / "miners.json"
    write_registry(path, [RegistryEntry("hk-a", "http://127.0.0.1:9001"), RegistryEntry("hk-b", "http://127.0.0.1:9002")])
    repo = defs.resources["validator_db"].repo
    with instance_for_test() as instance:
        tick_sensor(instance, defs, "miner_registry_sensor")
        assert {m.hotkey: m.listed for m in repo.miners()} == {"hk-a": True, "hk-b": True}
        faults = [("does not exist", lambda: path.unlink()),
                  ("cannot be read", lambda: path.mkdir()),
                  ("not valid JSON", lambda: (shutil.rmtree(path), path.write_text('[{"hotkey": "hk-a", '))),
                  ("url missing", lambda: path.write_text('[{"hotkey": "hk-a"}]'))]
        for expected, fault in faults:
            fault()
            with pytest.raises(Exception, match=expected) as failed:
                tick_sensor(instance, defs, "miner_registry_sensor")
            assert str(path) in str(failed.value)
            assert {m.hotkey: m.listed for m in repo.miners()} == {"hk-a": True, "hk-b": True}, expected
        write_registry(path, [RegistryEntry("hk-a", "http://127.0.0.1:9001")])   # a good file that drops hk-b
        tick_sensor(instance, defs, "miner_registry_sensor")
        assert {m.hotkey: m.listed for m in repo.miners()} == {"hk-a": True, "hk-b": False}


def test_schedule_tick_seeds_the_day_once(tmp_path):
    defs = make_defs(tmp_path)
    with instance_for_test() as instance:
        requests = tick_schedule(instance, defs, "daily_forecast_schedule", T0 + timedelta(hours=18))
        assert [(r.partition_key, r.run_key) for r in requests] == [(DATE, f"{DATE}|gfs_seed")]
        job = defs.resolve_job_def("daily_seed_job")
        assert job.execute_in_process(instance=instance, partition_key=DATE).success
        assert job.execute_in_process(instance=instance, partition_key=DATE).success   # idempotent
        repo = defs.resources["validator_db"].repo
        run = repo.run_for_init_time(T0)
        assert run is not None and run.status == "gfs_ready" and len(repo.all_runs()) == 1


def test_an_unchanged_registry_tick_writes_nothing(tmp_path):
    """The cursor holds the digest of what the last tick applied: the same read is skipped before
    any DB write; a changed file is applied at the next tick."""
    defs = make_defs(tmp_path)
    path = tmp_path / "miners.json"
    write_registry(path, [RegistryEntry("hk-a", "http://127.0.0.1:9001", 1)])
    sensor_def = defs.resolve_sensor_def("miner_registry_sensor")
    with instance_for_test() as instance:
        def tick(cursor):  # noqa: ANN001, ANN202
            context = build_sensor_context(instance=instance, definitions=defs, sensor_name="miner_registry_sensor",
                                           resources=defs.resources, cursor=cursor)
            return sensor_def.evaluate_tick(context)

        first = tick(None)
        assert first.cursor
        second = tick(first.cursor)
        assert "as last applied" in second.skip_message and second.cursor in (None, first.cursor)
        write_registry(path, [RegistryEntry("hk-a", "http://127.0.0.1:9001", 1),
                              RegistryEntry("hk-b", "http://127.0.0.1:9002", 2)])
        third = tick(first.cursor)
        assert third.cursor != first.cursor
        assert [m.hotkey for m in defs.resources["validator_db"].repo.miners()] == ["hk-a", "hk-b"]

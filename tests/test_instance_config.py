"""The instance configs load: embedded SQLite (dagster.yaml) and production PostgreSQL (deploy/)."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

from dagster import DagsterInstance, asset, materialize

from gaia_dagster.runtime.daemon import dagster_command
from gaia_dagster.sensors.poll import LANE_TAG, SLOW_LANE

ROOT = Path(__file__).resolve().parent.parent


@asset
def probe() -> int:
    return 1


def _instance_from(config: Path, home: Path) -> DagsterInstance:
    home.mkdir(parents=True, exist_ok=True)
    shutil.copy(config, home / "dagster.yaml")
    return DagsterInstance.from_config(str(home))


def _one_retry_mechanism_and_monitored_runs(instance: DagsterInstance) -> None:
    assert not instance.run_retries_enabled                      # the validator's own attempts only
    assert instance.run_monitoring_enabled and instance.run_launcher.supports_check_run_worker_health
    assert type(instance.run_launcher).__name__ == "ForkingRunLauncher"
    queue = instance.get_concurrency_config().run_queue_config
    [partition, lane] = queue.tag_concurrency_limits
    assert partition["key"] == "dagster/partition" and partition["limit"] == 1   # one run per partition at a time
    # slow-lane runs (sensors.poll.LANE_TAG) take at most a quarter of the slots
    assert (lane["key"], lane["value"]) == (LANE_TAG, SLOW_LANE) and 4 * lane["limit"] <= queue.max_concurrent_runs


def test_embedded_instance_runs_on_sqlite_with_forked_monitored_runs(tmp_path):
    with _instance_from(ROOT / "dagster.yaml", tmp_path / "home") as instance:
        _one_retry_mechanism_and_monitored_runs(instance)
        assert instance.get_concurrency_config().run_queue_config.max_concurrent_runs >= 4
        assert materialize([probe], instance=instance).success


def test_production_instance_runs_on_postgresql(tmp_path, monkeypatch, pg_url):
    monkeypatch.setenv("DAGSTER_PG_URL", pg_url)
    with _instance_from(ROOT / "deploy" / "dagster.yaml", tmp_path / "home") as instance:
        assert type(instance.run_storage).__name__ == "PostgresRunStorage"
        _one_retry_mechanism_and_monitored_runs(instance)
        assert instance.get_concurrency_config().run_queue_config.max_concurrent_runs == 16
        result = materialize([probe], instance=instance)
        assert result.success
        assert instance.get_run_by_id(result.run_id) is not None


def test_the_production_workspace_loads_the_code_location_from_one_code_server(tmp_path):
    """deploy/README.md's commands: a code server on port 4266, and deploy/workspace.yaml pointing
    the webserver and the daemon at it (the sensors are listed through it)."""
    env = {**os.environ, "DAGSTER_HOME": str(tmp_path), "DAGSTER_DISABLE_TELEMETRY": "1"}
    shutil.copy(ROOT / "dagster.yaml", tmp_path / "dagster.yaml")
    server = subprocess.Popen([dagster_command("dagster"), "code-server", "start", "-m", "gaia_dagster.definitions",
                               "-a", "defs", "-p", "4266", "--location-name", "gaia_dagster"],
                              env=env, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                              start_new_session=True)
    try:
        deadline = time.monotonic() + 300   # a loaded machine imports slowly
        while True:
            listed = subprocess.run([dagster_command("dagster"), "sensor", "list", "-w", str(ROOT / "deploy" / "workspace.yaml")],
                                    env=env, cwd=ROOT, capture_output=True, text=True)
            if listed.returncode == 0 or time.monotonic() > deadline or server.poll() is not None:
                break
            time.sleep(1)
        assert listed.returncode == 0, listed.stderr[-2000:]
        assert "forecast_poll_sensor" in listed.stdout and "era5_availability_sensor" in listed.stdout
    finally:
        stop_process_group(server)


def stop_process_group(server: subprocess.Popen, grace_s: float = 60.0) -> None:
    """SIGTERM the server's process group, then SIGKILL it if it has not exited within ``grace_s``
    (Dagster's code server once took over 30 s to stop on a loaded CI machine; how fast Dagster's
    own server stops is not what this test is about)."""
    os.killpg(server.pid, signal.SIGTERM)
    try:
        server.wait(timeout=grace_s)
    except subprocess.TimeoutExpired:
        os.killpg(server.pid, signal.SIGKILL)
        server.wait(timeout=30)


def test_embedded_pool_is_held_per_run_and_can_never_wait_on_a_step(tmp_path):
    """Embedded: the miner_io pool is enforced by the run queue (run granularity), which is only
    equivalent to per-step claims while the pool has a slot for every run that can run at once."""
    from dagster._core.instance.config import PoolGranularity

    with _instance_from(ROOT / "dagster.yaml", tmp_path / "home") as instance:
        config = instance.get_concurrency_config()
        assert config.pool_config.pool_granularity == PoolGranularity.RUN
        assert config.pool_config.default_pool_limit >= config.run_queue_config.max_concurrent_runs

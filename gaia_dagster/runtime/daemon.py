"""The real Dagster processes on an instance: one code server, ``dagster-daemon`` (and optionally the
webserver) sharing it, and launching a partition the way an operator does (``dagster job launch``
onto the run queue).

The code server is started once (``dagster api grpc``) and the daemon and webserver load the code
location from it through a workspace that points at its socket, as ``dagster dev`` does. A daemon
given ``workspace.yaml``'s module itself restarts its own code server every minute (~4 CPU-s of
imports each time, over an hour of CPU a day); a daemon restarted after a crash reuses the server.

The demo, the day benchmark and the end-to-end tests run a day through these, so a day is only
ever orchestrated by Dagster's own daemon: its schedule and sensor ticks, its run queue, and the
instance's run launcher.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping

PROJECT_ROOT = Path(__file__).resolve().parent.parent.parent
WORKSPACE = PROJECT_ROOT / "workspace.yaml"
DAILY_SCHEDULE = "daily_forecast_schedule"
NO_TELEMETRY = {"DAGSTER_DISABLE_TELEMETRY": "1"}
"""Dagster's telemetry uploader deletes ``$DAGSTER_HOME/logs`` after uploading: every Dagster process
the project starts runs without it (and the instance config turns it off too)."""


CODE_LOCATION = "gaia_dagster"
CODE_SERVER_START_TIMEOUT_S = 120.0


def dagster_command(name: str) -> str:
    """A Dagster console script of this interpreter's environment (``dagster``, ``dagster-daemon``)."""
    beside = Path(sys.executable).parent / name
    return str(beside) if beside.exists() else name


def code_server_workspace(path: Path, socket_path: Path) -> Path:
    """A workspace whose one code location is the code server listening on ``socket_path``."""
    path.write_text(json.dumps({"load_from": [{"grpc_server": {"socket": str(socket_path),
                                                               "location_name": CODE_LOCATION}}]}))
    return path


def wait_for_code_server(server: subprocess.Popen, socket_path: Path, timeout_s: float) -> None:
    """Return once the code server at ``socket_path`` answers with the code location loaded; raise
    if it exits or does not answer within ``timeout_s`` (its log says why)."""
    from dagster._grpc.client import DagsterGrpcClient

    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise RuntimeError(f"the code server exited with code {server.returncode}; see its log")
        if socket_path.exists():
            try:
                DagsterGrpcClient(socket=str(socket_path)).list_repositories()
                return
            except Exception:  # noqa: BLE001 - not serving yet, or still loading the code location
                pass
        time.sleep(0.2)
    raise RuntimeError(f"the code server did not answer on {socket_path} within {timeout_s:.0f} s")


def process_cpu_seconds(pid: int, include_children: bool = True) -> float:
    """User + system CPU of a live process from ``/proc`` (and of its reaped children)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    ticks = int(fields[11]) + int(fields[12]) + ((int(fields[13]) + int(fields[14])) if include_children else 0)
    return ticks / os.sysconf("SC_CLK_TCK")


def process_tree(pid: int) -> list[int]:
    """``pid`` and every live descendant."""
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            parts = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        children.setdefault(int(parts[1]), []).append(int(stat.parent.name))
    tree, todo = [], [pid]
    while todo:
        current = todo.pop()
        tree.append(current)
        todo += children.get(current, [])
    return tree


def tree_cpu_seconds(pid: int) -> float:
    """CPU of a process tree: every live process and the children each has reaped."""
    total = 0.0
    for p in process_tree(pid):
        try:
            total += process_cpu_seconds(p)
        except OSError:
            pass
    return total


def tree_rss_bytes(pid: int) -> int:
    """Resident memory of a process tree right now."""
    total = 0
    for p in process_tree(pid):
        try:
            status = Path(f"/proc/{p}/status").read_text()
        except OSError:
            continue
        for line in status.splitlines():
            if line.startswith("VmRSS:"):
                total += int(line.split()[1]) * 1024
    return total


def prepare_storage(home: Path) -> None:
    """Create the instance's storage (run, event log, schedule) once, from this one process.

    On SQLite each storage is created and stamped with its Alembic revision by whichever process
    opens it first; a daemon, a webserver and a ``dagster job launch`` starting together on a fresh
    home can each stamp it, leaving two heads that no later process can open. Doing it first, alone,
    leaves nothing to race on."""
    from dagster import AssetKey, DagsterInstance

    with DagsterInstance.from_config(str(home)) as instance:
        instance.get_runs(limit=1)
        instance.all_instigator_state()
        instance.get_latest_materialization_event(AssetKey("gfs_seed"))


def stop_schedule(home: Path, env: Mapping[str, str], name: str = DAILY_SCHEDULE, workspace: Path = WORKSPACE) -> None:
    """Stop ``name`` on the instance at ``home`` as an operator does (``dagster schedule stop``),
    and check the instance holds it stopped. The demo, the tests and the benchmarks launch their day
    themselves: a daemon they start must never fire the 18:00 UTC schedule whatever the clock says."""
    from dagster import DagsterInstance
    from dagster._core.scheduler.instigation import InstigatorStatus

    subprocess.run([dagster_command("dagster"), "schedule", "stop", name, "-w", str(workspace)], env=dict(env),
                   cwd=PROJECT_ROOT, check=True, capture_output=True)
    with DagsterInstance.from_config(str(home)) as instance:
        states = [s for s in instance.all_instigator_state() if s.name == name]
    if not states or any(s.status != InstigatorStatus.STOPPED for s in states):
        raise RuntimeError(f"schedule {name} is not stopped on the instance at {home}")


@dataclass
class DagsterProcesses:
    """One code server, ``dagster-daemon`` (and the webserver when ``ui_port`` is set) on the instance
    at ``home``; the daily schedule is stopped first unless ``schedule`` is True (operators run their
    own daemon, with the schedule: this class serves the demo, the tests and the benchmarks)."""

    home: Path
    env: Mapping[str, str] = field(default_factory=dict)
    ui_port: int | None = None
    log_dir: Path | None = None
    schedule: bool = False
    daemon: subprocess.Popen | None = None
    webserver: subprocess.Popen | None = None
    code_server: subprocess.Popen | None = None
    _socket_dir: Path | None = None

    def environment(self) -> dict[str, str]:
        return {**os.environ, **self.env, **NO_TELEMETRY, "DAGSTER_HOME": str(self.home), "PYTHONUNBUFFERED": "1"}

    def _log(self, name: str):  # noqa: ANN202
        directory = self.log_dir or self.home / "logs"
        directory.mkdir(parents=True, exist_ok=True)
        return open(directory / f"{name}.log", "ab")  # noqa: SIM115 - the child keeps it

    @property
    def workspace(self) -> Path:
        """The workspace the daemon and webserver load: the shared code server once it runs."""
        return self.home / "code-server-workspace.yaml" if self._socket_dir else WORKSPACE

    def _start_code_server(self) -> None:
        """Start the code server (unless one is serving already) and wait until it has loaded."""
        if self.code_server is not None and self.code_server.poll() is None:
            return
        self._socket_dir = self._socket_dir or Path(tempfile.mkdtemp(prefix="gaia-code-"))  # short: a UDS path
        socket_path = self._socket_dir / "server.sock"
        socket_path.unlink(missing_ok=True)
        log = self._log("code-server")
        self.code_server = subprocess.Popen(
            [dagster_command("dagster"), "api", "grpc", "-m", "gaia_dagster.definitions", "-a", "defs",
             "--socket", str(socket_path), "--location-name", CODE_LOCATION, "--log-level", "warning"],
            env=self.environment(), stdout=log, stderr=subprocess.STDOUT, cwd=PROJECT_ROOT, start_new_session=True)
        log.close()
        wait_for_code_server(self.code_server, socket_path, CODE_SERVER_START_TIMEOUT_S)
        code_server_workspace(self.workspace, socket_path)

    def start(self) -> "DagsterProcesses":
        """Start the code server, then the daemon (and the webserver) loading the code location from it."""
        prepare_storage(self.home)
        self._start_code_server()
        if not self.schedule:
            stop_schedule(self.home, self.environment(), workspace=self.workspace)
        log = self._log("dagster-daemon")
        self.daemon = subprocess.Popen([dagster_command("dagster-daemon"), "run", "-w", str(self.workspace)],
                                       env=self.environment(), stdout=log, stderr=subprocess.STDOUT,
                                       cwd=PROJECT_ROOT, start_new_session=True)
        log.close()
        if self.ui_port:
            log = self._log("dagster-webserver")
            self.webserver = subprocess.Popen(
                [dagster_command("dagster-webserver"), "-w", str(self.workspace), "-h", "127.0.0.1", "-p",
                 str(self.ui_port)],
                env=self.environment(), stdout=log, stderr=subprocess.STDOUT, cwd=PROJECT_ROOT,
                start_new_session=True)
            log.close()
        return self

    def launch(self, job: str, partition: str, tags: Mapping[str, str] | None = None) -> None:
        """Submit one partition's run to the instance's run queue, as ``dagster job launch`` does;
        the daemon dequeues it and the instance's run launcher starts it."""
        all_tags = {"dagster/partition": partition, **(tags or {})}
        subprocess.run([dagster_command("dagster"), "job", "launch", "-w", str(self.workspace), "-j", job,
                        "--tags", json.dumps(all_tags)],
                       env=self.environment(), cwd=PROJECT_ROOT, check=True, capture_output=True)

    def alive(self) -> bool:
        return self.daemon is not None and self.daemon.poll() is None

    def roots(self) -> list[int]:
        """The live processes whose trees this class started: the daemon and the code server."""
        return [p.pid for p in (self.daemon, self.code_server) if p is not None and p.poll() is None]

    def cpu_seconds(self) -> float:
        """CPU used so far by the daemon, the code server, the run-worker zygote and every run."""
        return sum(tree_cpu_seconds(pid) for pid in self.roots()) if self.alive() else 0.0

    def rss_bytes(self) -> int:
        return sum(tree_rss_bytes(pid) for pid in self.roots()) if self.alive() else 0

    def stop(self, timeout_s: float = 30.0) -> None:
        """Stop the webserver, the daemon and the code server (SIGTERM to their process groups, then
        SIGKILL)."""
        processes = [p for p in (self.webserver, self.daemon, self.code_server) if p is not None]
        for proc in processes:
            if proc.poll() is None:
                try:
                    os.killpg(proc.pid, signal.SIGTERM)
                except ProcessLookupError:
                    pass
        deadline = time.monotonic() + timeout_s
        for proc in processes:
            try:
                proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        if self._socket_dir is not None:
            shutil.rmtree(self._socket_dir, ignore_errors=True)
            self.workspace.unlink(missing_ok=True)
            self._socket_dir = None

    def __enter__(self) -> "DagsterProcesses":
        return self.start()

    def __exit__(self, *exc) -> None:  # noqa: ANN002
        self.stop()

"""``ForkingRunLauncher``: each run in its own process, forked from a warm parent, for a fraction of
a CPU-second of overhead (the default launcher spawns a fresh interpreter per run: ~3.5 CPU-s).

Configured in the instance's ``dagster.yaml``::

    run_launcher:
      module: gaia_dagster.runtime.launcher
      class: ForkingRunLauncher

The daemon (and ``dagster dev``) launch dequeued runs through it. It keeps one zygote process
(``gaia_dagster.runtime.zygote``) that has imported Dagster and the code location; every run is a
fork of it (pid recorded on the run as ``gaia/worker_pid``), so run monitoring sees a dead worker
and marks its run failed, and termination signals that one process. When the code on disk
changes, the zygote notices before the next fork and is replaced.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

from dagster import _check as check
from dagster._core.launcher.base import (
    CheckRunHealthResult, LaunchRunContext, ResumeRunContext, RunLauncher, WorkerStatus,
)
from dagster._serdes import ConfigurableClass, ConfigurableClassData, serialize_value

from gaia_dagster.runtime.schema_heads import keep_dagster_schema_heads
from gaia_dagster.runtime.sqlite_engines import keep_sqlite_engines
from gaia_dagster.runtime.zygote import INSTANCE_REF_ENV, ZYGOTE_MARKER

WORKER_PID_TAG = "gaia/worker_pid"
WORKER_HOST_TAG = "gaia/worker_host"


def worker_alive(pid: int) -> bool:
    """Rule: a run worker is alive while its pid exists, is not a zombie, and is a zygote fork."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return False
    state = stat.rsplit(")", 1)[1].split()[0]
    return state not in ("Z", "X") and ZYGOTE_MARKER in cmdline


class ForkingRunLauncher(RunLauncher, ConfigurableClass):
    """Launch each run as a fork of a warm zygote that has loaded ``definitions_module``."""

    def __init__(self, definitions_module: str = "gaia_dagster.definitions", log_path: str | None = None,
                 inst_data: ConfigurableClassData | None = None):
        keep_dagster_schema_heads()   # the daemon checks every new run's event log database
        keep_sqlite_engines()         # and writes the runs, ticks and events of every sensor and run
        self._inst_data = inst_data
        self.definitions_module = definitions_module
        self.log_path = log_path
        self._lock = threading.Lock()
        self._zygote: subprocess.Popen | None = None
        super().__init__()

    # -- configurable class -------------------------------------------------------------------
    @property
    def inst_data(self) -> ConfigurableClassData | None:
        return self._inst_data

    @classmethod
    def config_type(cls) -> dict:
        from dagster import Field, StringSource

        return {
            "definitions_module": Field(str, is_required=False,
                                        description="The code location's module (default gaia_dagster.definitions)."),
            "log_path": Field(StringSource, is_required=False,
                              description="File the run workers' stray output goes to (default: the instance's logs)."),
        }

    @classmethod
    def from_config_value(cls, inst_data: ConfigurableClassData, config_value: dict) -> "ForkingRunLauncher":
        return cls(inst_data=inst_data, **config_value)

    # -- the zygote -----------------------------------------------------------------------------
    def _log_file(self) -> Path:
        path = Path(self.log_path) if self.log_path else Path(self._instance.root_directory) / "logs" / "run_workers.log"
        path.parent.mkdir(parents=True, exist_ok=True)
        return path

    def _start_zygote(self) -> subprocess.Popen:
        """Start a zygote and wait until it has imported everything it preloads."""
        log = open(self._log_file(), "ab")  # noqa: SIM115 - the child keeps it
        env = {**os.environ, INSTANCE_REF_ENV: serialize_value(self._instance.get_ref())}
        zygote = subprocess.Popen([sys.executable, "-m", ZYGOTE_MARKER, self.definitions_module],
                                  stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=log,
                                  cwd=os.getcwd(), env=env, start_new_session=True)
        log.close()
        hello = self._read(zygote)
        if not hello.get("ready"):
            raise RuntimeError(f"run-worker zygote did not start: {hello}")
        return zygote

    @staticmethod
    def _read(zygote: subprocess.Popen) -> dict[str, Any]:
        line = zygote.stdout.readline()
        if not line:
            raise RuntimeError(f"run-worker zygote exited (code {zygote.poll()}); see its log")
        return json.loads(line)

    def _fork(self, run_id: str) -> int:
        """Ask the zygote for a worker for ``run_id``; a stale or dead zygote is replaced once."""
        request = json.dumps({"run_id": run_id, "instance_ref": serialize_value(self._instance.get_ref())})
        with self._lock:
            for _ in range(2):
                if self._zygote is None or self._zygote.poll() is not None:
                    self._zygote = self._start_zygote()
                try:
                    self._zygote.stdin.write((request + "\n").encode())
                    self._zygote.stdin.flush()
                    answer = self._read(self._zygote)
                except (BrokenPipeError, RuntimeError):
                    self._zygote = None
                    continue
                if answer.get("stale"):
                    self._zygote.wait(timeout=30)
                    self._zygote = None
                    continue
                return int(answer["pid"])
        raise RuntimeError(f"could not start a run worker for run {run_id}")

    # -- the launcher -----------------------------------------------------------------------------
    def launch_run(self, context: LaunchRunContext) -> None:
        run = context.dagster_run
        check.not_none(run.job_code_origin, f"run {run.run_id} has no code origin")
        pid = self._fork(run.run_id)
        self._instance.add_run_tags(run.run_id, {WORKER_PID_TAG: str(pid), WORKER_HOST_TAG: socket.gethostname()})

    def _pid(self, run_id: str) -> int | None:
        run = self._instance.get_run_by_id(run_id)
        if run is None or WORKER_PID_TAG not in run.tags:
            return None
        return int(run.tags[WORKER_PID_TAG])

    def terminate(self, run_id: str) -> bool:
        """Mark the run canceling and interrupt its worker (it reports the run canceled)."""
        run = self._instance.get_run_by_id(run_id)
        pid = self._pid(run_id)
        if run is None or pid is None or not worker_alive(pid):
            return False
        self._instance.report_run_canceling(run)
        os.kill(pid, signal.SIGTERM)
        return True

    @property
    def supports_check_run_worker_health(self) -> bool:
        return True

    def check_run_worker_health(self, run) -> CheckRunHealthResult:  # noqa: ANN001
        """RUNNING while the forked worker lives; FAILED once it is gone (killed or crashed)."""
        pid = self._pid(run.run_id)
        if pid is None:
            return CheckRunHealthResult(WorkerStatus.UNKNOWN, "no worker pid recorded yet")
        if run.tags.get(WORKER_HOST_TAG) not in (None, socket.gethostname()):
            return CheckRunHealthResult(WorkerStatus.UNKNOWN, f"worker runs on {run.tags[WORKER_HOST_TAG]}")
        if worker_alive(pid):
            return CheckRunHealthResult(WorkerStatus.RUNNING, run_worker_id=str(pid))
        return CheckRunHealthResult(WorkerStatus.FAILED, f"run worker (pid {pid}) is gone", run_worker_id=str(pid))

    @property
    def supports_resume_run(self) -> bool:
        return False

    def resume_run(self, context: ResumeRunContext) -> None:
        raise NotImplementedError("runs are rerun by the validator's own retries, not resumed")

    def dispose(self) -> None:
        with self._lock:
            if self._zygote is not None and self._zygote.poll() is None:
                self._zygote.stdin.close()
                try:
                    self._zygote.wait(timeout=5)
                except subprocess.TimeoutExpired:
                    self._zygote.kill()
            self._zygote = None

"""A run's stdout and stderr reach its compute log files (what the UI shows) with no process started
for them (runtime/compute_logs.py); Dagster's own capture starts a tail and a watcher per stream."""

from __future__ import annotations

import json
import subprocess
import sys

# Runs one asset that prints to both streams, on an instance of its own, counting the processes
# started meanwhile; prints what was started and what the compute log files hold.
CAPTURE = """
import json, subprocess, sys, tempfile
from pathlib import Path
started = []
original = subprocess.Popen.__init__
def counted(self, args, *rest, **kwargs):
    started.append(" ".join(map(str, args)) if isinstance(args, (list, tuple)) else str(args))
    original(self, args, *rest, **kwargs)
subprocess.Popen.__init__ = counted
if sys.argv[1] == "kept":
    from gaia_dagster.runtime.compute_logs import keep_compute_logs_in_files
    keep_compute_logs_in_files()
from dagster import DagsterInstance, asset, materialize
from dagster._core.instance.ref import InstanceRef

@asset
def talkative():
    print("to stdout from the step", flush=True)
    print("to stderr from the step", file=sys.stderr, flush=True)
    return 1

home = tempfile.mkdtemp()
with DagsterInstance.from_ref(InstanceRef.from_dir(home)) as instance:
    started.clear()
    assert materialize([talkative], instance=instance).success
logs = {p.suffix: p.read_text() for p in Path(home).rglob("*") if p.suffix in (".out", ".err")}
print(json.dumps({"started": started, "logs": logs}))
"""


def _capture(mode: str) -> dict:
    out = subprocess.run([sys.executable, "-c", CAPTURE, mode], capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_a_runs_output_reaches_its_compute_logs_without_a_process_started():
    kept = _capture("kept")
    assert not [command for command in kept["started"] if command.startswith("tail") or "watch_orphans" in command]
    assert "to stdout from the step" in kept["logs"][".out"]
    assert "to stderr from the step" in kept["logs"][".err"]


def test_dagsters_own_capture_starts_a_tail_per_stream():
    """What the rule replaces: the same run with Dagster's capture as it is starts its tails and
    watchers (if Dagster stops doing so, runtime/compute_logs.py has nothing left to do)."""
    plain = _capture("plain")
    assert sum(1 for command in plain["started"] if command.startswith("tail -F")) == 2
    assert sum(1 for command in plain["started"] if "watch_orphans" in command) == 2
    assert "to stdout from the step" in plain["logs"][".out"]
    assert "to stderr from the step" in plain["logs"][".err"]

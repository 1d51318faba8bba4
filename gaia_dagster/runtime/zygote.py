"""The warm run-worker parent: imports Dagster, the code location and what runs need once
(``runtime.warm``), then forks one child per run.

A run worker started from scratch pays ~1.2 CPU-s to import Dagster and ~2.4 CPU-s to import the
code location before it does any work; a per-miner run does well under a second of real work. The
zygote pays the imports once. Each run is a ``fork()`` of it: the child executes the run in process
(the jobs use the in-process executor) and exits; it is a separate process, so a crash or a kill
takes down one run, never the launcher or the daemon.

Protocol on stdin/stdout, one JSON object a line:
  -> {"run_id": ..., "instance_ref": <serialized InstanceRef>}
  <- {"ready": true, "pid": <zygote pid>}                  once, after the imports
  <- {"run_id": ..., "pid": <worker pid>}                   per run
  <- {"run_id": ..., "stale": true}                         the code changed on disk: the zygote
                                                            exits and the launcher starts a new one

Children are reaped by the zygote, so their CPU time adds to the zygote's ``cutime``/``cstime``.

The objects the zygote built are frozen out of the garbage collector (``gc.freeze``) before any
fork: a run's collections never walk the ~350k objects it inherited, and so never write to (copy)
the pages that hold them. Measured on a fork that allocates 300k small objects and then collects:
1.5-1.7 CPU-s and 25k page faults without, 0.13 CPU-s and 700 faults with; a short run that never
reaches a full collection costs the same either way.
"""

from __future__ import annotations

import gc
import importlib
import json
import os
import signal
import sys
import time
from pathlib import Path
from typing import Any

ZYGOTE_MARKER = "gaia_dagster.runtime.zygote"
WORKER_CPU_TAG = "gaia/worker_cpu_s"
INSTANCE_REF_ENV = "GAIA_ZYGOTE_INSTANCE_REF"


def code_fingerprint(package_dir: Path) -> float:
    """Rule: the code a zygote preloaded is stale once any ``.py`` file of the package is newer."""
    return max((p.stat().st_mtime for p in package_dir.rglob("*.py")), default=0.0)


def _reap_children(*_args) -> None:  # noqa: ANN002
    """Wait for every finished run worker, so none lingers as a zombie and its CPU time is counted."""
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return


_WARM: tuple[str | None, Any] = (None, None)
"""The instance the zygote opened while warming (``runtime.warm``) and its ref: a forked run whose
ref is the same uses it, its storage already open and checked, instead of opening its own."""


def execute_run_in_child(run_id: str, instance_ref_json: str) -> int:
    """Execute one run in this (forked) process, exactly as ``dagster api execute_run`` does, and
    record the worker's CPU time on the run."""
    from dagster import DagsterInstance
    from dagster._cli.api import _execute_run_command_body
    from dagster._serdes import deserialize_value
    from dagster._core.instance.ref import InstanceRef
    from dagster._utils.interrupts import capture_interrupts

    signal.signal(signal.SIGCHLD, signal.SIG_DFL)
    started = os.times()
    warm_ref, warm_instance = _WARM
    with capture_interrupts():
        with (warm_instance if warm_ref == instance_ref_json and warm_instance is not None
              else DagsterInstance.from_ref(deserialize_value(instance_ref_json, InstanceRef))) as instance:
            code = _execute_run_command_body(run_id, instance, lambda _event: None, set_exit_code_on_failure=True)
            now = os.times()
            cpu = (now.user - started.user) + (now.system - started.system)
            instance.add_run_tags(run_id, {WORKER_CPU_TAG: f"{cpu:.3f}"})
    return code


def _fork_run(request: dict) -> int:
    """Fork a run worker; returns its pid in the parent and never returns in the child."""
    pid = os.fork()
    if pid:
        return pid
    code = 1
    try:
        gc.enable()
        os.setpgid(0, 0)
        sys.stdin.close()
        code = execute_run_in_child(request["run_id"], request["instance_ref"])
    except BaseException:  # noqa: BLE001 - the child must never return into the zygote loop
        import traceback

        traceback.print_exc()
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)


def serve(definitions_module: str) -> None:
    """Warm up once (``runtime.warm``), then fork a run worker per request until stdin closes."""
    from gaia_dagster.runtime.warm import warm

    global _WARM
    gc.disable()   # no collection while warming: no freed holes in pages the forks share
    ref = os.environ.pop(INSTANCE_REF_ENV, None)
    _WARM = (ref, warm(definitions_module, ref))
    gc.freeze()
    package_dir = Path(importlib.import_module("gaia_dagster").__file__).parent
    fingerprint = code_fingerprint(package_dir)
    signal.signal(signal.SIGCHLD, _reap_children)
    out = sys.stdout
    sys.stdout = sys.stderr  # anything else printed goes to the log, not into the protocol
    print(json.dumps({"ready": True, "pid": os.getpid()}), file=out, flush=True)
    for line in sys.stdin:
        if not line.strip():
            continue
        request = json.loads(line)
        if code_fingerprint(package_dir) != fingerprint:
            print(json.dumps({"run_id": request["run_id"], "stale": True}), file=out, flush=True)
            return
        gc.freeze()   # what handling the request allocated stays out of the fork's collections too
        pid = _fork_run(request)
        print(json.dumps({"run_id": request["run_id"], "pid": pid}), file=out, flush=True)
    # stdin closed: the launcher is gone. Running workers finish on their own.
    while True:
        try:
            os.wait()
        except ChildProcessError:
            return
        except InterruptedError:
            time.sleep(0.1)


def main(argv: list[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    serve(args[0] if args else "gaia_dagster.definitions")
    return 0


if __name__ == "__main__":
    sys.exit(main())

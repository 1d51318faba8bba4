"""A whole day under the real ``dagster-daemon``, and what it costs the validator.

Cheap reference miners (a coarse grid, no inference delay) are served on loopback from this
process; a fresh instance with the project's ``dagster.yaml`` (forking run launcher, four runs at
once, run monitoring) and the daemon run the day exactly as an operator's would: ``gfs_seed``
launched onto the run queue, then the schedule's sensors do the rest. Printed:

- CPU-s of the whole process tree (the daemon, the code server it shares with the webserver, the
  run-worker zygote, every run),
  and per miner-stage (three per-miner stages: request, verify + day-1, ERA5), and split by role
  (``cpu_s_by_role``: the daemon, the code server that evaluates the sensors, the runs with their
  zygote, their helpers such as the compute-log tails);
- CPU-s a minute of the same tree idle (``idle_cpu_s_per_min``: every sensor ticking with nothing
  to do, watched for 30 s once the day is done and its runs ended, not counted in the day's figures);
- CPU-s of the run workers alone (each run records its own on the run as ``gaia/worker_cpu_s``),
  and per run of each stage (query and integrity runs are pure orchestration; forecast and ERA5
  runs include verifying and scoring: their ``orchestration`` figure is the run's CPU less the
  stage's own, which the assets record as ``gaia/stage_cpu_s``);
- runs launched, seconds from launch to the first day-1 score and to the leaderboard;
- peak RSS of the daemon's process tree (sampled every 0.5 s);
- what the machine charges (``machine``, measured before the day): CPU-s of a fixed pure-Python
  loop, CPU microseconds per page a forked child first writes, and CPU microseconds to create a
  file in the work directory (every forecast chunk a run mirrors is a file, and so is every
  SQLite journal). CPU-s figures are only comparable between runs whose ``machine`` figures are
  close (nearly the same code measured 1.36 CPU-s per miner-stage on one machine and 3.2 to 3.6
  on another; one machine charged 220 to 290 us to create a file under /tmp and 7 to 33 us
  elsewhere on the same disk);
- what the validator keeps on disk after the day: forecast mirrors (should be nothing once
  scored) and the shared GFS, ERA5 and climatology caches.

The miners' own inference (~7 CPU-s each at 30 degrees, all on this process's one core) is not
counted, but it sets the pace: polls are spaced by ``--retry-scale`` so that slow miners are not
given up on, and the times to the first day-1 score and to the leaderboard include that wait.

The day's clock is compressed by ``--retry-scale`` (0.3: a poll every 90 s instead of 300 s), and
so are the sensors: every sensor ticks every ``--sensor-interval`` seconds (``GAIA_SENSOR_INTERVAL_S``;
by default the forecast poll sensor's production 30 s times the retry scale, 9 s). The poll sensor
then ticks as often against the day's clock as in production, and the others (60 to 300 s in
production) 2 to 10 times as often, so the sensors' idle cost is counted generously, not hidden.

The validator's files (Dagster's home, the validator DB, its caches and mirrors) go in a fresh
folder under ``--work-dir`` (by default the system's temporary directory): put it where an
operator's ``DAGSTER_HOME`` and ``GAIA_HOME`` would be.

    python benchmarks/day_under_daemon.py --miners 64 [--work-dir DIR] [--json]
"""

from __future__ import annotations

import argparse
import json
import shutil
import signal
import sys
import tempfile
import threading
import time
from collections import Counter
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PER_MINER_STAGES = 3
POLL_SENSOR_S = 30   # the forecast poll sensor's production interval (sensors/poll.py)
IDLE_S = 30.0        # how long the tree is watched idle before the day starts


def cpu_by_role(roots: list[int]) -> dict[str, float]:
    """CPU-s of the daemon's and the code server's process trees by role, from each process's
    command line."""
    from gaia_dagster.runtime.daemon import process_cpu_seconds, process_tree

    roles: dict[str, float] = Counter()
    for p in (p for root in roots for p in process_tree(root)):
        try:
            command = Path(f"/proc/{p}/cmdline").read_bytes().replace(b"\0", b" ").decode()
            cpu = process_cpu_seconds(p)
        except OSError:
            continue
        role = ("code_server" if "dagster api grpc" in command else "runs" if "runtime.zygote" in command
                else "daemon" if "dagster-daemon" in command else "run_helpers")
        roles[role] += cpu
    return roles


def machine_reference(work: Path) -> dict[str, float]:
    """What this machine charges for the two things a day is made of, measured before it starts, so
    figures from different machines can be told apart: CPU-s of a fixed pure-Python loop, and
    microseconds of CPU per page a forked child first writes (copy-on-write and zero-fill faults:
    every run is a fork)."""
    import os

    started = time.process_time()
    total = 0
    for k in range(3_000_000):
        total += k & 7
    python_s = time.process_time() - started
    pages = 16384   # 64 MiB
    inherited = bytearray(pages * 4096)
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:
        before = os.times()
        for offset in range(0, len(inherited), 4096):
            inherited[offset] = 1
        fresh = bytearray(pages * 4096)
        for offset in range(0, len(fresh), 4096):
            fresh[offset] = 1
        after = os.times()
        os.write(write_end, f"{(after.user + after.system) - (before.user + before.system)}".encode())
        os._exit(0)
    os.waitpid(pid, 0)
    os.close(write_end)
    child_s = float(os.read(read_end, 64))
    os.close(read_end)
    return {"python_loop_cpu_s": round(python_s, 3), "page_fault_cpu_us": round(child_s / (2 * pages) * 1e6, 2),
            "file_create_cpu_us": round(file_create_cpu_us(work), 1)}


def file_create_cpu_us(work: Path, files: int = 500) -> float:
    """CPU microseconds to create, write and close one small file in a new folder under ``work``."""
    folder = Path(tempfile.mkdtemp(dir=work))
    try:
        started = time.process_time()
        for k in range(files):
            with open(folder / f"{k}.0.0", "wb") as handle:
                handle.write(b"chunk" * 80)
        return (time.process_time() - started) / files * 1e6
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def run_day(miners: int, date: str, resolution: float, timeout_s: float, retry_scale: str = "0.3",
            sensor_interval_s: str = "9", work_dir: str | None = None) -> dict:
    from dagster import DagsterInstance

    from gaia_dagster.core.registry import RegistryEntry
    from gaia_dagster.db.repository import ValidatorRepository
    from gaia_dagster.fleet import serve_miners_in_process
    from gaia_dagster.resources.registry import write_registry
    from gaia_dagster.runtime.daemon import DagsterProcesses

    t0 = datetime.strptime(date, "%Y-%m-%d").replace(tzinfo=timezone.utc)
    work = Path(tempfile.mkdtemp(prefix="gaia-day-bench-", dir=work_dir))
    machine = machine_reference(work)
    home = work / "dagster_home"
    home.mkdir()
    shutil.copy(ROOT / "dagster.yaml", home / "dagster.yaml")
    db_url = f"sqlite:///{work / 'validator.db'}"
    env = {"GAIA_DB_URL": db_url, "GAIA_REGISTRY": str(work / "miners.json"), "GAIA_HOME": str(work / "gaia"),
           "GAIA_RESOLUTION": str(resolution), "GAIA_RETRY_SCALE": retry_scale, "GAIA_MINER_TIMEOUT_S": "10",
           "GAIA_SENSOR_INTERVAL_S": sensor_interval_s, "GAIA_FIRST_DATE": date}
    repo = ValidatorRepository(db_url)
    repo.create_schema()
    try:
        with serve_miners_in_process(miners, work / "miners", resolution=resolution, inference_delay_s=0.0) as fleet:
            write_registry(Path(env["GAIA_REGISTRY"]),
                           [RegistryEntry(hotkey, url, uid) for uid, (hotkey, url) in enumerate(fleet)])
            with DagsterProcesses(home, env) as dagster:
                time.sleep(3.0)  # the daemon and its code server come up before the clock starts
                cpu_start = dagster.cpu_seconds()
                roles_start = cpu_by_role(dagster.roots())
                peak = {"rss": 0}
                sampling = threading.Event()

                def sample() -> None:
                    while not sampling.is_set():
                        peak["rss"] = max(peak["rss"], dagster.rss_bytes())
                        time.sleep(0.5)

                sampler = threading.Thread(target=sample, daemon=True)
                sampler.start()
                started = time.monotonic()
                dagster.launch("daily_seed_job", date)
                first_day1 = leaderboard = None
                while time.monotonic() - started < timeout_s:
                    run = repo.run_for_init_time(t0)
                    rows = repo.responses(run_id=run.id) if run else []
                    if first_day1 is None and any(r.day1_attempts and r.status in ("day1_scored", "era5_scoring",
                                                                                    "era5_scored") for r in rows):
                        first_day1 = time.monotonic() - started
                    if run is not None and run.status == "completed":
                        leaderboard = time.monotonic() - started
                        break
                    time.sleep(0.5)
                instance = DagsterInstance.from_config(str(home))
                _wait_runs_ended(instance, 60)
                cpu_total = dagster.cpu_seconds() - cpu_start
                roles = {role: round(cpu - roles_start.get(role, 0.0), 1)
                         for role, cpu in cpu_by_role(dagster.roots()).items()}
                sampling.set()
                sampler.join()
                runs = instance.get_runs()
                # The day is done: every sensor now ticks and finds nothing to do. What waiting costs:
                idle_start = dagster.cpu_seconds()
                time.sleep(IDLE_S)
                idle_cpu_s_per_min = (dagster.cpu_seconds() - idle_start) * 60.0 / IDLE_S
                idle_runs = len(instance.get_runs()) - len(runs)
                worker_cpu = sum(float(r.tags.get("gaia/worker_cpu_s", 0)) for r in runs)
                by_stage: dict[str, list[float]] = {}
                overhead: dict[str, list[float]] = {}
                for r in runs:
                    stage = r.tags.get("gaia/stage", r.job_name)
                    cpu = float(r.tags.get("gaia/worker_cpu_s", 0))
                    by_stage.setdefault(stage, []).append(cpu)
                    overhead.setdefault(stage, []).append(cpu - float(r.tags.get("gaia/stage_cpu_s", 0)))
                statuses = [r.status for r in repo.responses()]
                disk = {part: _bytes_under(work / "gaia" / "cache" / part) for part in ("forecasts", "gfs", "era5",
                                                                                      "climatology")}
                db_bytes = (work / "validator.db").stat().st_size
                reasons = Counter((r.error or "").split(": ", 1)[-1][:90] for r in repo.responses()
                                  if r.status == "failed")
        miner_stages = miners * PER_MINER_STAGES
        return {
            "miners": miners, "resolution": resolution, "completed": leaderboard is not None,
            "machine": machine, "work_dir": str(work.parent),
            "jobs_scored": statuses.count("era5_scored"), "jobs_failed": statuses.count("failed"),
            "failure_reasons": dict(reasons.most_common(3)),
            "runs_launched": len(runs),
            "cpu_s_total": round(cpu_total, 1), "cpu_s_per_miner_stage": round(cpu_total / miner_stages, 3),
            "cpu_s_by_role": roles, "sensor_interval_s": float(sensor_interval_s),
            "idle_cpu_s_per_min": round(idle_cpu_s_per_min, 2), "idle_runs_launched": idle_runs,
            "worker_cpu_s": round(worker_cpu, 1), "worker_cpu_s_per_miner_stage": round(worker_cpu / miner_stages, 3),
            "s_to_first_day1": None if first_day1 is None else round(first_day1, 1),
            "s_to_leaderboard": None if leaderboard is None else round(leaderboard, 1),
            "peak_rss_mb": round(peak["rss"] / 2**20),
            "validator_disk_kb": {part: round(size / 1024) for part, size in disk.items()},
            # What one miner-day leaves the validator: its forecast mirrors (nothing, once scored) and
            # its share of the validator DB (job, frozen manifest, score rows).
            "disk_kb_per_miner_day": {"forecast_mirrors": round(disk["forecasts"] / 1024 / miners, 1),
                                      "validator_db": round(db_bytes / 1024 / miners, 1)},
            "worker_cpu_s_per_run_by_stage": {
                stage: {"runs": len(v), "mean": round(sum(v) / len(v), 3),
                        "orchestration_mean": round(sum(overhead[stage]) / len(v), 3)}
                for stage, v in sorted(by_stage.items())},
        }
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _bytes_under(path: Path) -> int:
    """Bytes of every file under ``path`` (what the validator keeps on disk after the day)."""
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file()) if path.exists() else 0


def _wait_runs_ended(instance, timeout_s: float) -> None:  # noqa: ANN001
    from dagster import DagsterRunStatus, RunsFilter

    active = [DagsterRunStatus.QUEUED, DagsterRunStatus.NOT_STARTED, DagsterRunStatus.STARTING,
              DagsterRunStatus.STARTED, DagsterRunStatus.CANCELING]
    deadline = time.monotonic() + timeout_s
    while instance.get_runs(RunsFilter(statuses=active), limit=1) and time.monotonic() < deadline:
        time.sleep(0.5)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--miners", type=int, default=8)
    parser.add_argument("--date", default="2026-10-20")
    parser.add_argument("--resolution", type=float, default=30.0, help="grid of miners and validator (degrees)")
    parser.add_argument("--timeout", type=float, default=1800.0)
    parser.add_argument("--retry-scale", default="0.3",
                        help="GAIA_RETRY_SCALE: 0.3 polls every 90 s, 10 polls per job (the loopback miners share one core: 64 forecasts take minutes)")
    parser.add_argument("--sensor-interval", default=None,
                        help="GAIA_SENSOR_INTERVAL_S: every sensor's interval in seconds (default: the forecast "
                             "poll's production 30 s compressed by --retry-scale; see the module's doc)")
    parser.add_argument("--work-dir", default=None,
                        help="where the day's files go (a fresh folder in it; default: the system's temporary directory)")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # stop the daemon and miners on the way out
    sensor_interval = args.sensor_interval or str(max(1, round(POLL_SENSOR_S * float(args.retry_scale))))
    result = run_day(args.miners, args.date, args.resolution, args.timeout, args.retry_scale, sensor_interval,
                     args.work_dir)
    if args.json:
        print(json.dumps(result))
    else:
        for key, value in result.items():
            print(f"{key:>30}: {value}")
    return 0 if result["completed"] else 1


if __name__ == "__main__":
    sys.exit(main())

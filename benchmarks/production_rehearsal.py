"""A whole day on the production sources at 0.25 degree, under the real ``dagster-daemon``.

``GAIA_SOURCES=production`` and nothing else of the operator's: the code location reads NOAA GFS,
ERA5 and the WeatherBench2 climatology through its production loaders, here pointed (by settings
only) at loopback stand-ins that speak the real formats (``gaia_dagster/world/standin_*.py``):

- a NOAA bucket with ``.idx`` files and real GRIB2 messages (the cycle's f012 and the T0+12 h
  analysis, 0.25 degree, with unneeded messages between the wanted ones), read by HTTP Range;
- the CDS API (``GAIA_ERA5_PROVIDER=cds``, the default here: queued, run, served) or the
  ARCO-ERA5 Zarr (``--era5-provider arco``: 37 levels, hourly axis padded with missing chunks);
- the WeatherBench2 climatology Zarr (1440 x 721, latitude ascending);

the two Zarr stores served over loopback HTTP (read through fsspec, as ``gs://`` is through gcsfs).

The fields are the embedded world's at 0.25 degree, so two reference miners (``gaia-format``: 720
rows, as Aurora-based Gaia miners send, and ``persistence``) forecast on Gaia's 721 x 1440 grid
and score as they would against the real sources. Day-1 and ERA5 are scored the way Gaia scores
them (deployed profile), the data cache is capped by ``GAIA_CACHE_MAX_GB``.

Printed: whether the day completed, each miner's scores, seconds from launch to the first day-1
and first ERA5 score and to the leaderboard, the peak RSS of any run process (each run is a fork:
its peak is ``VmHWM``), of the daemon's whole tree, the cache's size against its cap, the disk left.

    python benchmarks/production_rehearsal.py [--era5-provider cds|arco] [--cache-max-gb 3] [--json]
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
from datetime import datetime, timedelta, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "benchmarks"))

from day_under_daemon import _bytes_under, _wait_runs_ended  # noqa: E402

CDS_KEY = "00000000-rehearsal-key-0000-000000000000"
# Two different forecasts: the same forecast twice would be refused as a copy pair (core/copies.py).
PROFILES = ["gaia-format", "persistence"]


# -- the stand-ins' data ----------------------------------------------------------------------------
def write_sources(data: Path, t0: datetime, log) -> dict:  # noqa: ANN001
    """Write the world at 0.25 degree in each service's format; return the files the bucket serves."""
    from gaia_dagster.core.contract import DAY1_LEAD_HOURS, ERA5_LEAD_HOURS
    from gaia_dagster.resources.climatology import climatology_key
    from gaia_dagster.world.atmosphere import SyntheticAtmosphere
    from gaia_dagster.world.standin_formats import gfs_grib_file, write_arco_store, write_wb2_climatology

    world = SyntheticAtmosphere(resolution=0.25)
    files: dict[str, Path] = {}
    for lead in DAY1_LEAD_HOURS:
        for cycle, hour, state, label in ((t0, lead, world.gfs_forecast(t0, lead), f"{lead} hour fcst"),
                                          (t0 + timedelta(hours=lead), 0, world.gfs_analysis(t0 + timedelta(hours=lead)),
                                           "anl")):
            body, idx = gfs_grib_file(state, cycle, label)
            key = f"/gfs.{cycle:%Y%m%d}/{cycle:%H}/atmos/gfs.t{cycle:%H}z.pgrb2.0p25.f{hour:03d}"
            path = data / "noaa" / key.strip("/")
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(body)
            path.with_name(path.name + ".idx").write_text(idx)
            files[key], files[key + ".idx"] = path, path.with_name(path.name + ".idx")
    log(f"NOAA bucket: {len(files) // 2} GRIB2 files with .idx")
    era5_times = [t0 + timedelta(hours=h) for h in ERA5_LEAD_HOURS]
    write_arco_store(data / "arco.zarr", t0, max(ERA5_LEAD_HOURS), era5_times, world.era5,
                     stop=era5_times[-1] - timedelta(days=3), stop_era5t=era5_times[-1])
    log(f"ARCO-ERA5 Zarr: {len(era5_times)} valid times x 37 levels")
    valid = [t0 + timedelta(hours=h) for h in (*DAY1_LEAD_HOURS, *ERA5_LEAD_HOURS)]
    write_wb2_climatology(data / "wb2.zarr", [climatology_key(v) for v in valid], lambda doy, hour: world.climatology(t0))
    log(f"WeatherBench2 climatology Zarr: {len(valid)} (day of year, hour) slices")
    return files


# -- measuring ----------------------------------------------------------------------------------
class PeakSampler:
    """Every 0.25 s: each process's peak RSS (``VmHWM``) in the daemon's tree, and the tree's total."""

    def __init__(self, dagster):  # noqa: ANN001
        self.dagster, self.by_pid, self.tree_peak = dagster, {}, 0
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        from gaia_dagster.runtime.daemon import process_tree

        while not self.stop.is_set():
            if self.dagster.alive():
                self.tree_peak = max(self.tree_peak, self.dagster.rss_bytes())
                for pid in (p for root in self.dagster.roots() for p in process_tree(root)):
                    try:
                        status = Path(f"/proc/{pid}/status").read_text()
                    except OSError:
                        continue
                    for line in status.splitlines():
                        if line.startswith("VmHWM:"):
                            self.by_pid[pid] = max(self.by_pid.get(pid, 0), int(line.split()[1]) * 1024)
            time.sleep(0.25)

    def __enter__(self) -> "PeakSampler":
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:  # noqa: ANN002
        self.stop.set()
        self.thread.join()


def watch_day(repo, t0: datetime, started: float, timeout_s: float, log) -> dict:  # noqa: ANN001
    """Seconds from launch to the first day-1 score, first ERA5 score and the completed run."""
    marks: dict[str, float | None] = {"first_day1_s": None, "first_era5_s": None, "leaderboard_s": None}
    seen: dict[str, str] = {}
    while time.monotonic() - started < timeout_s:
        run = repo.run_for_init_time(t0)
        rows = repo.responses(run_id=run.id) if run else []
        for r in rows:
            if seen.get(r.miner_hotkey) != r.status:
                seen[r.miner_hotkey] = r.status
                log(f"{time.monotonic() - started:7.1f} s  {r.miner_hotkey[:10]}  {r.status}")
        now = round(time.monotonic() - started, 1)
        if marks["first_day1_s"] is None and any(repo.total_score(r.id, "day1") is not None for r in rows):
            marks["first_day1_s"] = now
        if marks["first_era5_s"] is None and any(repo.total_score(r.id, "era5") is not None for r in rows):
            marks["first_era5_s"] = now
        if run is not None and run.status == "completed":
            marks["leaderboard_s"] = now
            break
        time.sleep(1.0)
    return marks


# -- the day ------------------------------------------------------------------------------------
def rehearse(date: str, provider: str, cache_max_gb: float, timeout_s: float, retry_scale: str, log) -> dict:  # noqa: ANN001
    from dagster import DagsterInstance

    from gaia_dagster.db.repository import ValidatorRepository
    from gaia_dagster.fleet import start_fleet
    from gaia_dagster.resources.cache_bound import cache_bytes
    from gaia_dagster.resources.registry import write_registry
    from gaia_dagster.runtime.daemon import DagsterProcesses
    from gaia_dagster.runtime.launcher import WORKER_PID_TAG
    from gaia_dagster.world.standin_servers import CdsServer, RangeServer, store_files

    t0 = datetime.strptime(date, "%Y-%m-%d").replace(tzinfo=timezone.utc)
    work = Path(tempfile.mkdtemp(prefix="gaia-rehearsal-"))
    home, data, cache = work / "dagster_home", work / "standins", work / "gaia" / "cache"
    home.mkdir()
    shutil.copy(ROOT / "dagster.yaml", home / "dagster.yaml")
    db_url = f"sqlite:///{work / 'validator.db'}"
    repo = ValidatorRepository(db_url)
    repo.create_schema()
    try:
        prepared = time.monotonic()
        files = write_sources(data, t0, log)
        log(f"stand-in data written in {time.monotonic() - prepared:.0f} s")
        reach = t0 + timedelta(hours=240)
        stores = {**store_files(data / "arco.zarr", "arco.zarr"), **store_files(data / "wb2.zarr", "wb2.zarr")}
        with RangeServer(files) as noaa, RangeServer(stores) as bucket, \
                CdsServer(data / "arco.zarr", CDS_KEY, reach=lambda: reach) as cds, \
                start_fleet(len(PROFILES), work / "miners", resolution=0.25, profiles=PROFILES,
                            name="gaia-rehearsal-miner") as fleet:
            write_registry(work / "miners.json", fleet.registry_entries())
            env = {"GAIA_SOURCES": "production", "GAIA_ERA5_PROVIDER": provider,
                   "GAIA_GFS_URL": noaa.url, "GAIA_ERA5_URL": f"{bucket.url}/arco.zarr",
                   "GAIA_CLIMATOLOGY_URL": f"{bucket.url}/wb2.zarr", "GAIA_STORAGE_OPTIONS": "{}",
                   "CDSAPI_URL": cds.base(), "CDSAPI_KEY": CDS_KEY, "CDSAPI_RC": str(work / "no.cdsapirc"),
                   "GAIA_CACHE_MAX_GB": str(cache_max_gb), "GAIA_DB_URL": db_url,
                   "GAIA_REGISTRY": str(work / "miners.json"), "GAIA_HOME": str(work / "gaia"),
                   "GAIA_RETRY_SCALE": retry_scale, "GAIA_SENSOR_INTERVAL_S": "2", "GAIA_FIRST_DATE": date}
            with DagsterProcesses(home, env, log_dir=work / "logs") as dagster, PeakSampler(dagster) as peaks:
                time.sleep(3.0)
                started = time.monotonic()
                dagster.launch("daily_seed_job", date)
                marks = watch_day(repo, t0, started, timeout_s, log)
                instance = DagsterInstance.from_config(str(home))
                _wait_runs_ended(instance, 120)
                runs = instance.get_runs()
                workers = {int(r.tags[WORKER_PID_TAG]) for r in runs if r.tags.get(WORKER_PID_TAG, "").isdigit()}
                run_peak = max((peaks.by_pid.get(pid, 0) for pid in workers), default=0)
                by_stage: dict[str, int] = {}
                for r in runs:  # which stage's run holds the peak
                    pid = r.tags.get(WORKER_PID_TAG, "")
                    stage = r.tags.get("gaia/stage", r.job_name)
                    if pid.isdigit():
                        by_stage[stage] = max(by_stage.get(stage, 0), round(peaks.by_pid.get(int(pid), 0) / 2**20))
            run = repo.run_for_init_time(t0)
            scores = {r.miner_hotkey[:10]: {"status": r.status, "day1": repo.total_score(r.id, "day1"),
                                            "era5": repo.total_score(r.id, "era5"), "error": r.error}
                      for r in (repo.responses(run_id=run.id) if run else [])}
            noaa_requests, store_requests, cds_jobs = len(noaa.log), len(bucket.log), len(cds.requests)
        cached = cache_bytes(cache)
        return {
            "completed": bool(run and run.status == "completed"), "era5_provider": provider, "resolution": 0.25,
            "miners": len(PROFILES), "scored": sum(s["status"] == "era5_scored" for s in scores.values()),
            **marks, "peak_rss_mb": round(run_peak / 2**20), "peak_rss_mb_by_stage": by_stage,
            "peak_tree_rss_mb": round(peaks.tree_peak / 2**20),
            "runs_launched": len(runs), "runs_sampled": len(workers & set(peaks.by_pid)),
            "cache_mb": round(cached / 1e6), "cache_cap_mb": round(cache_max_gb * 1e3),
            "forecast_mirrors_mb": round(_bytes_under(cache / "forecasts") / 1e6),
            "disk_left_mb": round(shutil.disk_usage(work).free / 2**20),
            "noaa_requests": noaa_requests, "zarr_requests": store_requests, "cds_jobs": cds_jobs, "scores": scores,
        }
    finally:
        shutil.rmtree(work, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--date", default="2026-10-20")
    parser.add_argument("--era5-provider", choices=("cds", "arco"), default="cds")
    parser.add_argument("--cache-max-gb", type=float, default=3.0)
    parser.add_argument("--timeout", type=float, default=2400.0)
    parser.add_argument("--retry-scale", default="0.1", help="GAIA_RETRY_SCALE: 0.1 polls a miner every 30 s")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # stop the daemon and miners on the way out
    began = time.monotonic()
    result = rehearse(args.date, args.era5_provider, args.cache_max_gb, args.timeout, args.retry_scale,
                      lambda line: print(line, file=sys.stderr if args.json else sys.stdout, flush=True))
    result["wall_s"] = round(time.monotonic() - began)
    if args.json:
        print(json.dumps(result))
    else:
        for key, value in result.items():
            print(f"{key:>20}: {value}")
    return 0 if result["completed"] else 1


if __name__ == "__main__":
    sys.exit(main())

"""Scoring speed and memory at 0.25 degree: the project's scorer against plain xarray.

Writes (once, cached under --dir) a forecast, ERA5 truth and a climatology of the embedded world
at 0.25 degree (721 x 1440) for leads 24, 48 and 72 h: 3 x 69 = 207 fields. Then runs, each as
its own process, ``gaia-dagster score era5`` and a plain-xarray implementation of the same
metrics (``.weighted().mean()``, one field at a time: the faster of the plain-xarray forms tried;
every lead and level of a variable at once took 1.6x longer and 6 GB), best of 3 each,
and prints fields/s, wall time and peak RSS of each process and the time ratio (project / xarray;
the target is 0.2 or less with a peak RSS under 1 GB). It also runs the project's scorer with
``--scorecard`` (the regional scorecard taken in the same pass) and prints its time against the
ERA5 score alone, in wall time and in CPU time of all its threads (``scorecard_ratio``,
``scorecard_cpu_ratio``; the target is 1.2 or less; on a loaded machine the CPU ratio is the one to
read). ``--variables`` scores only that
variable list (``core.scoring.variables``, as ``gaia-dagster score --variables``), in both. Figures
only; nothing is asserted.

    python benchmarks/scoring.py [--dir /tmp/gaia-bench] [--variables 2t,msl,t850,...] [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

T0 = datetime(2026, 10, 20, tzinfo=timezone.utc)
LEADS = (24, 48, 72)

PLAIN_XARRAY = r'''
import numpy as np, xarray as xr
from datetime import datetime, timedelta, timezone
f, o, c = (xr.open_zarr(p) for p in sys.argv[1:4])
fields = [(v, None if lev == "" else int(lev)) for v, lev in (item.split(":") for item in sys.argv[4].split(","))]
t0 = datetime(2026, 10, 20, tzinfo=timezone.utc)
w = np.cos(np.deg2rad(o["lat"])).clip(min=0)
def wmean(x): return float(x.weighted(w).mean(("lat", "lon")))
n = 0
for lead in (24, 48, 72):
    vt = t0 + timedelta(hours=lead)
    valid = np.datetime64(vt.replace(tzinfo=None), "ns")
    for v, lev in fields:
        sel = {} if lev is None else {"pressure_level": lev}
        fo = f[v].sel(time=valid, **sel).astype("float64").load()
        ob = o[v].sel(time=valid, **sel).astype("float64").load()
        cl = c[v].sel(dayofyear=vt.timetuple().tm_yday, hour=vt.hour, **sel).astype("float64").load()
        rmse = wmean((fo - ob) ** 2) ** 0.5; bias = wmean(fo - ob)
        corrected = fo - float((fo - ob).mean())
        skill = 1 - wmean((corrected - ob) ** 2) / wmean((cl - ob) ** 2)
        fa, oa = fo - cl, ob - cl
        fa, oa = fa - wmean(fa), oa - wmean(oa)
        acc = wmean(fa * oa) / (wmean(fa ** 2) * wmean(oa ** 2)) ** 0.5
        n += 1
print(n)
'''


def build_case(root: Path) -> tuple[Path, Path, Path]:
    """The three stores at 0.25 degree (written once; reused when present)."""
    from gaia_dagster.world.atmosphere import SyntheticAtmosphere
    from gaia_dagster.world.stores import write_climatology, write_forecast, write_truth

    paths = root / "forecast.zarr", root / "era5.zarr", root / "clim.zarr"
    if all((p / ".zmetadata").exists() for p in paths):
        return paths
    root.mkdir(parents=True, exist_ok=True)
    world = SyntheticAtmosphere(resolution=0.25)
    started = time.perf_counter()
    write_forecast(paths[0], world, "good", T0, leads=LEADS)
    write_truth(paths[1], world, T0, leads=LEADS)
    write_climatology(paths[2], world, [T0 + timedelta(hours=h) for h in LEADS])
    print(f"wrote the 0.25 degree case in {time.perf_counter() - started:.0f} s", file=sys.stderr)
    return paths


RSS_WRAPPER = ("import atexit, resource, runpy, sys; "
               "atexit.register(lambda: print('PEAK_RSS_KB', resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, "
               "file=sys.stderr)); ")


def _children_cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def measure(code: str, args: list[str]) -> dict:
    """Wall and CPU time (all its threads) of one fresh interpreter running ``code``, and its own
    peak RSS (whole process)."""
    started, cpu_before = time.perf_counter(), _children_cpu_s()
    proc = subprocess.run([sys.executable, "-c", RSS_WRAPPER + code, *args], capture_output=True, text=True,
                          env={**os.environ, "PYTHONWARNINGS": "ignore"})
    wall, cpu = time.perf_counter() - started, _children_cpu_s() - cpu_before
    if proc.returncode not in (0, 1):
        raise RuntimeError(f"benchmark child failed: {proc.stderr[-2000:]}")
    peak_kb = max(int(line.split()[1]) for line in proc.stderr.splitlines() if line.startswith("PEAK_RSS_KB"))
    return {"wall_s": wall, "cpu_s": cpu, "peak_rss_mb": peak_kb / 1024.0, "stdout": proc.stdout}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dir", default="/tmp/gaia-bench-scoring")
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--repeat", type=int, default=3, help="best of N runs of each (default 3)")
    parser.add_argument("--variables", default=None, help="variable list to score (default: Gaia's, every field)")
    parser.add_argument("--build-only", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.build_only:
        build_case(Path(args.dir))
        return 0
    # The case is built in its own process so that this one stays small.
    subprocess.run([sys.executable, __file__, "--build-only", "--dir", args.dir], check=True)
    root = Path(args.dir)
    forecast, truth, clim = root / "forecast.zarr", root / "era5.zarr", root / "clim.zarr"
    from gaia_dagster.core.scoring.variables import parse_variables

    listed = [(e.variable, level) for e in parse_variables(args.variables) for level in e.levels]
    fields = len(LEADS) * len(listed)
    ours_code = ("sys.argv = ['gaia-dagster-score', *sys.argv[1:]]; runpy.run_module('gaia_dagster.score', "
                 "run_name='__main__')")
    ours_args = ["era5", "--forecast", str(forecast), "--truth", str(truth), "--climatology", str(clim), "--json",
                 "--init-time", T0.isoformat(), *(["--variables", args.variables] if args.variables else [])]
    plain_fields = ",".join(f"{v}:{'' if lev is None else lev}" for v, lev in listed)
    ours_runs, plain_runs, card_runs = [], [], []
    for _ in range(args.repeat):   # interleaved, so all see the same machine load
        ours_runs.append(measure(ours_code, ours_args))
        plain_runs.append(measure(PLAIN_XARRAY, [str(forecast), str(truth), str(clim), plain_fields]))
        card_runs.append(measure(ours_code, [*ours_args, "--scorecard"]))
    ours = min(ours_runs, key=lambda r: r["wall_s"])
    plain = min(plain_runs, key=lambda r: r["wall_s"])
    card = min(card_runs, key=lambda r: r["wall_s"])
    scored = len(json.loads(ours["stdout"].strip().splitlines()[-1])["metrics"])
    result = {
        "variables": args.variables or "default", "fields": fields, "scored_fields": scored, "best_of": args.repeat,
        "project_wall_s": round(ours["wall_s"], 2), "project_fields_per_s": round(fields / ours["wall_s"], 1),
        "project_peak_rss_mb": round(max(r["peak_rss_mb"] for r in ours_runs), 1),
        "xarray_wall_s": round(plain["wall_s"], 2), "xarray_fields_per_s": round(fields / plain["wall_s"], 1),
        "xarray_peak_rss_mb": round(max(r["peak_rss_mb"] for r in plain_runs), 1),
        "time_ratio": round(ours["wall_s"] / plain["wall_s"], 3),
        "scorecard_wall_s": round(card["wall_s"], 2),
        "scorecard_peak_rss_mb": round(max(r["peak_rss_mb"] for r in card_runs), 1),
        "scorecard_ratio": round(card["wall_s"] / ours["wall_s"], 3),
        "project_cpu_s": round(min(r["cpu_s"] for r in ours_runs), 2),
        "scorecard_cpu_s": round(min(r["cpu_s"] for r in card_runs), 2),
        "scorecard_cpu_ratio": round(min(r["cpu_s"] for r in card_runs) / min(r["cpu_s"] for r in ours_runs), 3),
    }
    print(json.dumps(result) if args.json else "\n".join(f"{k:>22}: {v}" for k, v in result.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())

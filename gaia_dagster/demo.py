"""``gaia-dagster demo``: one simulated day end to end on the embedded default.

Starts a fleet of reference miners on loopback, registers them, and drives the day through the
real Dagster instance at ``$DAGSTER_HOME``: registry sensor, the 18:00 schedule tick, forecast
requests, poll-sensor ticks, verification and day-1, ERA5 truth and scores, the leaderboard.
Backoffs are compressed (``GAIA_RETRY_SCALE``) so the day takes minutes, not hours.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import sys
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

DEMO_RETRY_SCALE = "0.005"   # query backoff 0.3/1.5/4.5 s, poll every 1.5 s
DEMO_MINER_TIMEOUT_S = "3"


def prepare_home() -> Path:
    """``$DAGSTER_HOME`` (project-local ``.dagster_home`` when unset) with the embedded instance config
    (``gaia-dagster instance init``: copied when missing, an operator's own file kept)."""
    from gaia_dagster.resources.settings import init_instance

    result = init_instance()
    os.environ["DAGSTER_HOME"] = str(result.home)
    if result.status == "kept":
        print(f"note: {result.describe()}", file=sys.stderr, flush=True)
    return result.home


def _say(as_json: bool, text: str) -> None:
    print(text, file=sys.stderr if as_json else sys.stdout, flush=True)


def run_demo(miners: int, date: str, as_json: bool = False, resolution: float = 1.5, timeout_s: float = 540.0) -> int:
    """Run the demo day; exit code 0 when the day completed."""
    os.environ.setdefault("GAIA_RETRY_SCALE", DEMO_RETRY_SCALE)
    os.environ.setdefault("GAIA_MINER_TIMEOUT_S", DEMO_MINER_TIMEOUT_S)
    os.environ["GAIA_RESOLUTION"] = str(resolution)
    home = prepare_home()
    from gaia_dagster.fleet import start_fleet
    from gaia_dagster.resources.registry import write_registry
    from gaia_dagster.resources.settings import gaia_home

    say = lambda text: _say(as_json, text)  # noqa: E731
    signal.signal(signal.SIGTERM, lambda *_: (_ for _ in ()).throw(KeyboardInterrupt()))
    say(f"instance: {home}")
    say(f"starting {miners} reference miners on loopback ...")
    fleet = start_fleet(miners, gaia_home() / "fleet", resolution=resolution)
    try:
        for m in fleet.miners:
            say(f"  miner {m.index} {m.profile:<12} {m.hotkey} at {m.base_url}")
        write_registry(gaia_home() / "miners.json", fleet.registry_entries())
        results = drive_day(date, timeout_s, say)
    except KeyboardInterrupt:
        say("interrupted: stopping the miners")
        return 130
    finally:
        fleet.stop()
    profiles = {m.hotkey: m.profile for m in fleet.miners}
    summary = summarise(date, results, profiles)
    print_leaderboard(summary, say)
    if as_json:
        print(json.dumps(summary), flush=True)
    return 0 if summary["completed"] else 1


def drive_day(date: str, timeout_s: float, say) -> list[Any]:  # noqa: ANN001
    """Tick the schedule and sensors and execute their runs until the day's run is complete."""
    from dagster import DagsterInstance

    from gaia_dagster.assets.partitions import gfs_init_time
    from gaia_dagster.definitions import build_definitions
    from gaia_dagster.driver import DayDriver

    logging.getLogger("dagster").setLevel(logging.WARNING)
    defs = build_definitions()
    instance = DagsterInstance.get()
    driver = DayDriver(instance, defs, log_level="ERROR")
    repo = defs.resources["validator_db"].repo
    t0 = gfs_init_time(date)
    driver.tick_sensor("miner_registry_sensor")
    say(f"registry: {len(repo.miners())} miners known")
    requests = driver.tick_schedule("daily_forecast_schedule", t0 + timedelta(hours=18))
    say(f"schedule tick {date} 18:00 UTC: {len(requests)} run request(s)")
    _launch(driver, requests, say)
    _launch(driver, driver.tick_sensor("miner_orchestration_sensor"), say)
    deadline = time.monotonic() + timeout_s
    run = repo.run_for_init_time(t0)
    if run is not None and run.status == "completed":
        say(f"run for {date} is already complete on this instance: nothing to do")
    while time.monotonic() < deadline:
        run = repo.run_for_init_time(t0)
        if run is None or run.status in ("completed", "error"):
            break
        launched = _launch(driver, driver.tick_sensor("forecast_poll_sensor"), say)
        launched += _launch(driver, driver.tick_sensor("era5_availability_sensor"), say)
        if not launched:
            time.sleep(1.0)
    run = repo.run_for_init_time(t0)
    return [run, repo.responses(run_id=run.id) if run else [], repo]


def _launch(driver, requests, say) -> int:  # noqa: ANN001
    count = 0
    for request in requests:
        launched = driver.launch(request)
        if launched.skipped:
            continue
        count += 1
        stage = (request.tags or {}).get("gaia/stage", "")
        say(f"  run {launched.run_id[:8]} {stage:<12} {request.partition_key}: "
            f"{'ok' if launched.success else 'FAILED'}")
    return count


def summarise(date: str, results: list[Any], profiles: dict[str, str]) -> dict[str, Any]:
    """The demo's JSON result: one entry per miner with its scores or its error."""
    run, responses, repo = results
    by_hotkey = {r.miner_hotkey: r for r in responses}
    miners = []
    for hotkey, profile in profiles.items():
        r = by_hotkey.get(hotkey)
        if r is None:
            miners.append({"hotkey": hotkey, "profile": profile, "status": "failed", "day1_score": None,
                           "era5_score": None, "overall_score": None, "error": "no job was created for this miner"})
            continue
        failed = r.status == "failed"
        miners.append({
            "hotkey": hotkey, "profile": profile, "status": "failed" if failed else r.status,
            "day1_score": repo.total_score(r.id, "day1"), "era5_score": repo.total_score(r.id, "era5"),
            "overall_score": repo.total_score(r.id, "overall"), "error": r.error if failed else None,
        })
    return {"date": date, "run_status": run.status if run else None,
            "completed": bool(run and run.status == "completed"), "miners": miners}


def print_leaderboard(summary: dict[str, Any], say) -> None:  # noqa: ANN001
    say(f"\nleaderboard {summary['date']} (run {summary['run_status']}):")
    say(f"  {'profile':<12} {'status':<12} {'day1':>7} {'era5':>7} {'overall':>8}  hotkey / error")
    ranked = sorted(summary["miners"], key=lambda m: -(m["overall_score"] or -1))
    for m in ranked:
        fmt = lambda v: "   —   " if v is None else f"{v:7.4f}"  # noqa: E731
        tail = m["error"] if m["error"] else m["hotkey"]
        say(f"  {m['profile']:<12} {m['status']:<12} {fmt(m['day1_score'])} {fmt(m['era5_score'])} "
            f"{fmt(m['overall_score']):>8}  {tail}")

"""``gaia-dagster demo``: one simulated day end to end on the embedded default, under the real daemon.

Starts a fleet of reference miners on loopback and registers them, starts ``dagster-daemon`` (and,
with ``--ui``, the webserver) on the instance at ``$DAGSTER_HOME``, launches the day's ``gfs_seed``
partition as an operator does, and waits for the leaderboard while the schedule and sensors do
the rest. Sensor intervals and backoffs are compressed (``GAIA_SENSOR_INTERVAL_S``,
``GAIA_RETRY_SCALE``) so the day takes minutes, not days.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import time
from pathlib import Path
from typing import Any

from gaia_dagster.core.states import ResponseStatus, RunStatus  # noqa: E402 - pure, no Dagster

COMPLETED, FAILED = RunStatus.COMPLETED.value, ResponseStatus.FAILED.value
DEMO_SETTINGS = {
    "GAIA_RETRY_SCALE": "0.03",        # query backoff 1.8/9/27 s, poll every 9 s (10 polls), day-1 retry 9 s
    "GAIA_MINER_TIMEOUT_S": "3",
    "GAIA_SENSOR_INTERVAL_S": "2",     # every sensor ticks as often as the daemon allows
    "GAIA_WEIGHTS_INTERVAL_BLOCKS": "5",  # a weights slot a minute (12 s blocks) instead of every 50 minutes
}


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


def run_demo(miners: int, date: str, as_json: bool = False, resolution: float = 1.5, timeout_s: float = 540.0,
             ui_port: int | None = None) -> int:
    """Run the demo day under the daemon; exit code 0 when the day completed."""
    for name, value in DEMO_SETTINGS.items():
        os.environ.setdefault(name, value)
    os.environ["DAGSTER_DISABLE_TELEMETRY"] = "1"   # its uploader deletes $DAGSTER_HOME/logs
    os.environ["GAIA_RESOLUTION"] = str(resolution)
    os.environ.setdefault("GAIA_FIRST_DATE", date)
    home = prepare_home()
    from gaia_dagster.fleet import start_fleet
    from gaia_dagster.resources.registry import write_registry
    from gaia_dagster.resources.settings import gaia_home
    from gaia_dagster.runtime.daemon import DagsterProcesses

    say = lambda text: _say(as_json, text)  # noqa: E731
    signal.signal(signal.SIGTERM, lambda *_: (_ for _ in ()).throw(KeyboardInterrupt()))
    say(f"instance: {home}")
    say(f"starting {miners} reference miners on loopback ...")
    fleet = start_fleet(miners, gaia_home() / "fleet", resolution=resolution)
    dagster = DagsterProcesses(home, ui_port=ui_port)
    try:
        for m in fleet.miners:
            say(f"  miner uid {m.index} {m.profile:<12} {m.hotkey} at {m.base_url}")
        write_registry(gaia_home() / "miners.json", fleet.registry_entries())
        dagster.start()
        say(f"dagster-daemon started (pid {dagster.daemon.pid}); logs in {home / 'logs'}")
        if ui_port:
            say(f"Dagster UI: http://127.0.0.1:{ui_port}")
        results = watch_day(dagster, date, timeout_s, say)
        if ui_port:
            say("the day is done; the UI stays up until Ctrl-C")
            while dagster.alive():
                time.sleep(1)
    except KeyboardInterrupt:
        say("interrupted: stopping the daemon and the miners")
        return 130
    finally:
        dagster.stop()
        fleet.stop()
    profiles = {m.hotkey: m.profile for m in fleet.miners}
    summary = summarise(date, results, profiles)
    print_leaderboard(summary, say)
    if as_json:
        print(json.dumps(summary), flush=True)
    return 0 if summary["completed"] else 1


def watch_day(dagster, date: str, timeout_s: float, say) -> list[Any]:  # noqa: ANN001
    """Launch the day's ``gfs_seed`` partition onto the run queue, then report what the daemon
    does (runs as they end, jobs as they move) until the day's leaderboard is built."""
    from gaia_dagster.assets.partitions import gfs_init_time
    from gaia_dagster.db.repository import ValidatorRepository, default_db_url
    from gaia_dagster.resources.settings import dagster_home

    repo = ValidatorRepository(os.environ.get("GAIA_DB_URL") or default_db_url(dagster_home()))
    repo.create_schema()
    t0 = gfs_init_time(date)
    run = repo.run_for_init_time(t0)
    if run is not None and run.status == COMPLETED:
        say(f"the run for {date} is already complete on this instance; launching gfs_seed again changes nothing")
    say(f"launching gfs_seed[{date}] (dagster job launch -j daily_seed_job) ...")
    dagster.launch("daily_seed_job", date)
    from dagster import DagsterInstance

    instance = DagsterInstance.get()
    started = time.monotonic()
    seen_runs: set[str] = set()
    seen_status: dict[str, str] = {}
    already_complete = run is not None and run.status == COMPLETED
    while time.monotonic() - started < timeout_s:
        _report_runs(instance, seen_runs, say)
        run = repo.run_for_init_time(t0)
        for r in repo.responses(run_id=run.id) if run else []:
            if seen_status.get(r.miner_hotkey) != r.status:
                seen_status[r.miner_hotkey] = r.status
                say(f"  {time.monotonic() - started:6.1f}s  miner {r.miner_hotkey[:10]}… {r.status}"
                    + (f": {r.error.splitlines()[0][:160]}" if r.status == FAILED and r.error else ""))
        if already_complete and _seed_runs_finished(instance):
            break
        if run is not None and run.status in (COMPLETED, RunStatus.ERROR.value) and not already_complete:
            break
        if not dagster.alive():
            say("dagster-daemon exited; see its log")
            break
        time.sleep(1.0)
    else:
        say(f"timed out after {timeout_s:.0f} s")
    if run is not None and run.status == COMPLETED:
        _report_chain_weights(instance, date, dagster, say)
    _report_runs(instance, seen_runs, say)
    run = repo.run_for_init_time(t0)
    return [run, repo.responses(run_id=run.id) if run else [], repo]


def _report_chain_weights(instance, date: str, dagster, say, wait_s: float = 90.0) -> None:  # noqa: ANN001
    """Wait for the first ``chain_weights`` slot after the day completed (the weights cadence sensor
    opens one a minute in the demo) and print, by UID, what it recorded. A simulated day is older
    than Gaia's 15-day window by the time ERA5 has scored it, so the slot has nothing of it; the
    weights Gaia's validators would have set at T0 + 14 days are printed beside it."""
    from dagster import AssetKey

    done = time.time()
    started = time.monotonic()
    while time.monotonic() - started < wait_s and dagster.alive():
        event = instance.get_latest_materialization_event(AssetKey("chain_weights"))
        if event is not None and event.timestamp >= done:
            meta = event.asset_materialization.metadata
            say(f"chain_weights slot {meta['slot'].value} at block {meta['block'].value} ({meta['mode'].value}, "
                f"{meta['profile'].value}, netuid {meta['netuid'].value}, version key {meta['version_key'].value}): "
                f"{meta['status'].value}" + (f" ({meta['reason'].value})" if meta['reason'].value else ""))
            for uid, value in zip(meta["uids"].value, meta["u16_values"].value):
                say(f"  uid {uid:>4}  u16 {value:>5}")
            break
        time.sleep(1.0)
    else:
        say(f"no chain_weights slot materialized within {wait_s:.0f} s of the day's end")
    _report_weights_at(date, say)


def _report_weights_at(date: str, say) -> None:  # noqa: ANN001
    """``gaia-dagster weights --from-db --at T0+14d``: the day inside Gaia's window."""
    from datetime import timedelta

    from gaia_dagster.assets.partitions import gfs_init_time
    from gaia_dagster.core.weights_deployed import deployed_weights
    from gaia_dagster.core.weights_input import weight_inputs
    from gaia_dagster.weights_cli import document_from_db

    at = gfs_init_time(date) + timedelta(days=14)
    inputs = weight_inputs(document_from_db(at.isoformat()))
    result = deployed_weights(inputs.rows, inputs.nodes, inputs.now, inputs.block, inputs.env)
    say(f"deployed weights at {at:%Y-%m-%d %H:%M} UTC (gaia-dagster weights --from-db --at {at:%Y-%m-%dT%H:%MZ}):"
        + (f" none ({result.reason})" if result.weights is None else ""))
    for uid, value in zip(result.uids, result.u16):
        say(f"  uid {uid:>4}  u16 {value:>5}  weight {result.weights[uid]:.4f}")


def _seed_runs_finished(instance) -> bool:  # noqa: ANN001
    """True when the latest gfs_seed run has ended (a rerun of a completed day)."""
    from dagster import DagsterRunStatus, RunsFilter

    runs = instance.get_runs(RunsFilter(job_name="daily_seed_job"), limit=1)
    return bool(runs) and runs[0].status in (DagsterRunStatus.SUCCESS, DagsterRunStatus.FAILURE)


def _report_runs(instance, seen: set[str], say) -> None:  # noqa: ANN001
    """One line per run that ended since the last call: stage, partition, outcome."""
    from dagster import DagsterRunStatus, RunsFilter

    finished = [DagsterRunStatus.SUCCESS, DagsterRunStatus.FAILURE, DagsterRunStatus.CANCELED]
    runs = instance.get_runs(RunsFilter(statuses=finished), limit=200)
    for run in reversed(runs):
        if run.run_id in seen:
            continue
        seen.add(run.run_id)
        stage = run.tags.get("gaia/stage", run.job_name)
        partition = run.tags.get("dagster/partition", "")
        say(f"  run {run.run_id[:8]} {stage:<12} {partition[:40]:<40} {run.status.value.lower()}")


def summarise(date: str, results: list[Any], profiles: dict[str, str]) -> dict[str, Any]:
    """The demo's JSON result: one entry per miner with its scores or its error."""
    run, responses, repo = results
    by_hotkey = {r.miner_hotkey: r for r in responses}
    miners = []
    for hotkey, profile in profiles.items():
        r = by_hotkey.get(hotkey)
        if r is None:
            miners.append({"hotkey": hotkey, "profile": profile, "status": FAILED, "day1_score": None,
                           "era5_score": None, "overall_score": None, "error": "no job was created for this miner"})
            continue
        failed = r.status == FAILED
        miners.append({
            "hotkey": hotkey, "profile": profile, "status": FAILED if failed else r.status,
            "day1_score": repo.total_score(r.id, "day1"), "era5_score": repo.total_score(r.id, "era5"),
            "overall_score": repo.total_score(r.id, "overall"), "error": r.error if failed else None,
        })
    return {"date": date, "run_status": run.status if run else None,
            "completed": bool(run and run.status == COMPLETED), "miners": miners}


def print_leaderboard(summary: dict[str, Any], say) -> None:  # noqa: ANN001
    say(f"\nleaderboard {summary['date']} (run {summary['run_status']}):")
    say(f"  {'profile':<12} {'status':<12} {'day1':>7} {'era5':>7} {'overall':>8}  hotkey / error")
    ranked = sorted(summary["miners"], key=lambda m: -(m["overall_score"] or -1))
    for m in ranked:
        fmt = lambda v: "   —   " if v is None else f"{v:7.4f}"  # noqa: E731
        tail = m["error"] if m["error"] else m["hotkey"]
        say(f"  {m['profile']:<12} {m['status']:<12} {fmt(m['day1_score'])} {fmt(m['era5_score'])} "
            f"{fmt(m['overall_score']):>8}  {tail}")

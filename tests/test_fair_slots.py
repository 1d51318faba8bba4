"""One miner never holds the day, under the real ``dagster-daemon`` (issue 18): slow but legal miners
take no run slot while they infer, and stores that read slowly take at most the slow lane's slot,
so honest fast miners are verified and day-1 scored as soon as they are ready, however many slow
ones there are, and the slow ones are scored when they finish.

Reference miners run as processes on loopback (``fleet.start_fleet``, each slow one with its own
``--inference-delay``); the project's instance config (four runs at once) under the daemon.
"""

from __future__ import annotations

import time

import pytest

from test_daemon_day import DATE, T0, Day, max_runs_at_once

from gaia_dagster.fleet import start_fleet
from gaia_dagster.resources.registry import write_registry
from gaia_dagster.sensors.poll import LANE_TAG, SLOW_LANE

pytestmark = pytest.mark.e2e

FAST, SLOW = 2, 6
SLOW_INFERENCE_S = 150.0  # legal: well inside the poll budget (10 polls x 30 s at GAIA_RETRY_SCALE=0.1)
SCORED = ("day1_scored", "era5_scoring", "era5_partial", "era5_scored")


def test_fast_miners_are_scored_while_six_slow_ones_still_infer(tmp_path):
    day = Day(tmp_path, resolution=10.0)
    day.env["GAIA_RETRY_SCALE"] = "0.1"
    extra = [[] for _ in range(FAST)] + [["--inference-delay", str(SLOW_INFERENCE_S)] for _ in range(SLOW)]
    with start_fleet(FAST + SLOW, tmp_path / "fleet", resolution=10.0, profiles=["good"] * (FAST + SLOW),
                     extra_args=extra) as fleet, day.processes:
        write_registry(day.registry, fleet.registry_entries())
        fast = {m.hotkey for m in fleet.miners[:FAST]}
        slow = {m.hotkey for m in fleet.miners[FAST:]}
        started = time.monotonic()
        day.processes.launch("daily_seed_job", DATE)

        def jobs() -> dict[str, str]:
            run = day.repo.run_for_init_time(T0)
            return {r.miner_hotkey: r.status for r in day.repo.responses(run_id=run.id)} if run else {}

        day.wait("the fast miners' day-1 scores", lambda: all(jobs().get(h) in SCORED for h in fast), 240)
        fast_scored_s = time.monotonic() - started
        status = jobs()
        assert fast_scored_s < SLOW_INFERENCE_S, fast_scored_s
        assert all(status[h] == "inference_running" for h in slow), status   # still inferring: no slot held

        day.wait("the slow miners' day-1 scores", lambda: all(jobs().get(h) in SCORED for h in slow), 300)
        assert max_runs_at_once(day.instance) <= 4
        print(f"fast miners day-1 scored {fast_scored_s:.1f} s after launch; {SLOW} slow ones "
              f"({SLOW_INFERENCE_S:g} s inference) after {time.monotonic() - started:.1f} s")


SLOW_STORES = 5                 # more than the instance's four run slots
SLOW_STORE_FILE_S = 0.3         # each store file's answer (two read at once): ~8 s to verify, ~10 s more for day-1


def test_fast_miners_are_scored_while_five_slow_stores_read_one_at_a_time_in_the_slow_lane(tmp_path):
    day = Day(tmp_path, resolution=10.0)
    day.env.update({"GAIA_RETRY_SCALE": "0.1", "GAIA_SLOW_STORE_GRACE_S": "3", "GAIA_SLOW_STORE_BPS": "2000000"})
    extra = [[] for _ in range(FAST)] + [["--fault", "slow_store", "--fault-delay", str(SLOW_STORE_FILE_S)]
                                        for _ in range(SLOW_STORES)]
    with start_fleet(FAST + SLOW_STORES, tmp_path / "fleet", resolution=10.0,
                     profiles=["good"] * (FAST + SLOW_STORES), extra_args=extra) as fleet, day.processes:
        write_registry(day.registry, fleet.registry_entries())
        fast = {m.hotkey for m in fleet.miners[:FAST]}
        slow = {m.hotkey for m in fleet.miners[FAST:]}
        started = time.monotonic()
        day.processes.launch("daily_seed_job", DATE)

        def jobs() -> dict:
            run = day.repo.run_for_init_time(T0)
            return {r.miner_hotkey: r for r in day.repo.responses(run_id=run.id)} if run else {}

        day.wait("the fast miners' day-1 scores", lambda: all(
            (r := jobs().get(h)) is not None and r.status in SCORED for h in fast), 240)
        fast_scored_s = time.monotonic() - started
        waiting = [h for h, r in jobs().items() if h in slow and r.status not in SCORED]
        assert len(waiting) >= 2, (fast_scored_s, {h[:8]: r.status for h, r in jobs().items()})

        day.wait("the slow stores' day-1 scores", lambda: all(jobs()[h].status in SCORED for h in slow), 400)
        rows = jobs()
        assert all(rows[h].slow_store_at is not None for h in slow)          # each read in the slow lane
        assert all(rows[h].slow_store_at is None for h in fast)              # the fast ones never were
        assert {r.tags["gaia/miner"] for r in day.runs(**{LANE_TAG: SLOW_LANE})} == slow
        assert max_runs_at_once(day.instance, **{LANE_TAG: SLOW_LANE}) == 1   # one slot, shared in turn
        assert max_runs_at_once(day.instance) <= 4
        assert not any(t.to_status == "failed" for h in slow for t in day.repo.transitions("response", rows[h].id))
        print(f"fast miners day-1 scored {fast_scored_s:.1f} s after launch ({len(waiting)} slow stores still "
              f"waiting); all {SLOW_STORES} slow stores after {time.monotonic() - started:.1f} s")

"""Poll-sensor tick time with many in-flight jobs, some of them on hostile miners.

Serves ``--miners`` cheap reference miners on loopback (inference held back, so every job stays
in flight); the first ``--hostile`` of them answer polls badly, cycling through the poll faults
(nested JSON, dripped, huge, HTTP 500, not_found, bad UTF-8). Opens a job for each through the
request stage with the validator's Fiber client (``MinerAccess.client()``), then runs the forecast
poll sensor's code path (``poll_in_flight``) ``--ticks`` times and prints polls/s, each tick's wall
time (the first includes a Fiber handshake per miner), and how the hostile and healthy jobs came
out. Dagster allows a sensor tick 60 s; the client bounds it by ceil(miners / concurrency) x
the answer deadline.

    python benchmarks/poll_tick.py --miners 256 --hostile 32 --ticks 3 [--json]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

T0 = datetime(2026, 10, 20, tzinfo=timezone.utc)
VALIDATOR_URI = "//gaia-poll-bench-validator"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--miners", type=int, default=256)
    parser.add_argument("--hostile", type=int, default=32, help="miners answering polls badly (the first N)")
    parser.add_argument("--ticks", type=int, default=3)
    parser.add_argument("--concurrency", type=int, default=None, help="default: MinerAccess.poll_concurrency")
    parser.add_argument("--deadline", type=float, default=None, help="answer deadline, s (default: MinerAccess's)")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)

    from gaia_dagster.core.retry import StageRetry, retry_policies
    from gaia_dagster.db.repository import MinerRecord, ValidatorRepository
    from gaia_dagster.fleet import serve_miners_in_process
    from gaia_dagster.miner.faults import POLL_FAULTS
    from gaia_dagster.resources.miner import MinerAccess
    from gaia_dagster.stages.poll import poll_in_flight
    from gaia_dagster.stages.request import request_forecast

    access = MinerAccess(validator_hotkey_uri=VALIDATOR_URI,
                         **({"answer_deadline_s": str(args.deadline)} if args.deadline else {}))
    client = access.client()
    concurrency = args.concurrency or access.poll_concurrency
    kinds = sorted(POLL_FAULTS)
    faults = [kinds[i % len(kinds)] for i in range(min(args.hostile, args.miners))]
    poll_forever = StageRetry("poll", 10**6, (0.0,))
    with tempfile.TemporaryDirectory() as tmp, \
            serve_miners_in_process(args.miners, Path(tmp), faults=faults,
                                    fault_settings={"fault_delay_s": 600.0, "fault_size_bytes": 4 << 20}) as miners:
        repo = ValidatorRepository(f"sqlite:///{tmp}/validator.db")
        repo.create_schema()
        for hotkey, url in miners:
            repo.upsert_miner(hotkey, url)
            request_forecast(repo, client, MinerRecord(hotkey, url, None, True, 0), T0, access.validator_hotkey(),
                             retry_policies(0.0)["query"])
        hostile = {hotkey for hotkey, _ in miners[: len(faults)]}
        ticks, outcome = [], {}
        for _ in range(args.ticks):
            started = time.perf_counter()
            decisions = poll_in_flight(repo, client, poll_forever, concurrency=concurrency)
            ticks.append((time.perf_counter() - started, len(decisions)))
            outcome = {"hostile_failed_attempts": sum(1 for d in decisions if d.response.miner_hotkey in hostile
                                                      and d.response.error),
                       "healthy_answered": sum(1 for d in decisions if d.response.miner_hotkey not in hostile
                                               and not d.response.error)}
    polls = sum(n for _, n in ticks)
    deadline = client.answer_deadline
    result = {"miners": args.miners, "hostile": len(faults), "transport": "fiber", "concurrency": concurrency,
              "answer_deadline_s": deadline, "bound_s": -(-args.miners // concurrency) * deadline,
              "ticks": args.ticks, "polls": polls, "polls_per_s": round(polls / sum(t for t, _ in ticks), 1),
              "tick_s": [round(t, 2) for t, _ in ticks], "slowest_tick_s": round(max(t for t, _ in ticks), 2),
              **outcome}
    print(json.dumps(result) if args.json else "\n".join(f"{k:>24}: {v}" for k, v in result.items()))
    return 0 if result["slowest_tick_s"] < 60 else 1


if __name__ == "__main__":
    sys.exit(main())

"""Poll-sensor tick time with many in-flight jobs.

Serves ``--miners`` cheap reference miners on loopback (inference held back, so every job stays
in flight), opens a job for each through the request stage, then runs the forecast poll sensor's
code path (``poll_in_flight``) ``--ticks`` times and prints polls/s and the slowest tick. Dagster
allows a sensor tick 60 s.

    python benchmarks/poll_tick.py --miners 256 --ticks 5 [--json]
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
    parser.add_argument("--ticks", type=int, default=5)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)

    from gaia_dagster.core.retry import StageRetry, retry_policies
    from gaia_dagster.core.signing import keypair_from_uri
    from gaia_dagster.core.transport import SignedTransport
    from gaia_dagster.db.repository import MinerRecord, ValidatorRepository
    from gaia_dagster.fleet import serve_miners_in_process
    from gaia_dagster.resources.miner_client import MinerClient
    from gaia_dagster.stages.poll import poll_in_flight
    from gaia_dagster.stages.request import request_forecast

    keypair = keypair_from_uri(VALIDATOR_URI)
    client = MinerClient(connect_timeout=5, read_timeout=30, signer=SignedTransport(keypair))
    poll_forever = StageRetry("poll", 10**6, (0.0,))
    with tempfile.TemporaryDirectory() as tmp, serve_miners_in_process(args.miners, Path(tmp)) as miners:
        repo = ValidatorRepository(f"sqlite:///{tmp}/validator.db")
        repo.create_schema()
        for hotkey, url in miners:
            repo.upsert_miner(hotkey, url)
            request_forecast(repo, client, MinerRecord(hotkey, url, None, True, 0), T0, keypair.ss58_address,
                             retry_policies(0.0)["query"])
        ticks = []
        for _ in range(args.ticks):
            started = time.perf_counter()
            decisions = poll_in_flight(repo, client, poll_forever, concurrency=args.concurrency)
            ticks.append((time.perf_counter() - started, len(decisions)))
    polls = sum(n for _, n in ticks)
    result = {"miners": args.miners, "ticks": args.ticks, "polls": polls,
              "polls_per_s": round(polls / sum(t for t, _ in ticks), 1),
              "slowest_tick_s": round(max(t for t, _ in ticks), 2), "mean_tick_s": round(sum(t for t, _ in ticks) / len(ticks), 2)}
    print(json.dumps(result) if args.json else "\n".join(f"{k:>15}: {v}" for k, v in result.items()))
    return 0 if result["slowest_tick_s"] < 60 else 1


if __name__ == "__main__":
    sys.exit(main())

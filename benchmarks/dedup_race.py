"""Race: many processes create the same day's run and forecast requests at once.

As a schedule tick, a backfill, a sensor retry and a second replica would, ``--workers``
processes run the project's own ``request_forecast`` stage for the same T0 and the same
``--miners`` reference miners (served on loopback), all released by one barrier. The tables must
end with exactly one job per (run, miner), every miner asked once, and duplicates detected > 0.

    python benchmarks/dedup_race.py --db-url URL --workers 16 --miners 64 --json
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import random
import sys
import tempfile
import time
from collections import Counter
from datetime import datetime, timezone
from pathlib import Path

T0 = datetime(2026, 10, 20, tzinfo=timezone.utc)
VALIDATOR_URI = "//gaia-dedup-race-validator"


def worker(db_url: str, miners: list[tuple[str, str]], barrier, seed: int, out) -> None:  # noqa: ANN001
    """One racer: the request stage for every miner, in its own shuffled order."""
    from gaia_dagster.core.retry import retry_policies
    from gaia_dagster.core.signing import keypair_from_uri
    from gaia_dagster.resources.fiber_session import FiberSession
    from gaia_dagster.db.repository import MinerRecord, ValidatorRepository
    from gaia_dagster.resources.miner_client import MinerClient
    from gaia_dagster.stages.request import request_forecast

    repo = ValidatorRepository(db_url)
    client = MinerClient(connect_timeout=5, read_timeout=30, fiber=FiberSession(keypair_from_uri(VALIDATOR_URI)))
    order = list(miners)
    random.Random(seed).shuffle(order)
    barrier.wait()
    outcomes = Counter()
    try:
        for hotkey, url in order:
            outcome = request_forecast(repo, client, MinerRecord(hotkey, url, None, True, 0), T0,
                                       keypair_from_uri(VALIDATOR_URI).ss58_address,
                                       retry_policies(0.0)["query"])
            outcomes[outcome.outcome] += 1
    except Exception as exc:  # noqa: BLE001 - reported, and the benchmark fails
        outcomes[f"error: {type(exc).__name__}: {exc}"] += 1
    out.put(dict(outcomes))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--db-url", required=True)
    parser.add_argument("--workers", type=int, default=16)
    parser.add_argument("--miners", type=int, default=64)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)

    from gaia_dagster.db.repository import ValidatorRepository
    from gaia_dagster.fleet import serve_miners_in_process

    repo = ValidatorRepository(args.db_url)
    repo.create_schema()
    if repo.run_for_init_time(T0) is not None:
        print(f"the database already holds a run for {T0:%Y-%m-%d}: use an empty database", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory() as tmp, serve_miners_in_process(args.miners, Path(tmp)) as miners:
        for hotkey, url in miners:
            repo.upsert_miner(hotkey, url)
        ctx = mp.get_context("spawn")
        barrier, out = ctx.Barrier(args.workers), ctx.Queue()
        procs = [ctx.Process(target=worker, args=(args.db_url, miners, barrier, i, out)) for i in range(args.workers)]
        started = time.perf_counter()
        for p in procs:
            p.start()
        results = [out.get(timeout=600) for _ in procs]
        for p in procs:
            p.join()
        elapsed = time.perf_counter() - started
    outcomes = sum((Counter(r) for r in results), Counter())
    run = repo.run_for_init_time(T0)
    rows = repo.responses(run_id=run.id)
    counts = repo.duplicate_counts()
    summary = {
        "workers": args.workers, "miners": args.miners, "jobs_created": len(rows),
        "duplicates_detected": counts.get(("forecast_request", "detected"), 0),
        "duplicates_allowed": len(repo.duplicate_jobs()) + counts.get(("forecast_request", "allowed"), 0),
    }
    print(f"{args.workers} workers x {args.miners} miners in {elapsed:.1f} s: outcomes {dict(outcomes)}; "
          f"runs for T0: {len(repo.all_runs())}; miners asked: {outcomes['requested'] + outcomes['fast_path']}",
          file=sys.stderr if args.json else sys.stdout)
    print(json.dumps(summary) if args.json else summary)
    errors = [k for k in outcomes if k.startswith("error")]
    ok = not errors and summary["jobs_created"] == args.miners and summary["duplicates_allowed"] == 0 and len(repo.all_runs()) == 1
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())

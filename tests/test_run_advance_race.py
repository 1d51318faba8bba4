"""Several real processes advance one run at once (as concurrent ERA5 runs do): every one of them
returns without error, the run ends where they all asked, and the move is recorded once."""

from __future__ import annotations

import multiprocessing as mp
from datetime import datetime, timezone

T0 = datetime(2026, 10, 20, tzinfo=timezone.utc)
WORKERS = 6


def advance(url: str, run_id: int, barrier, out) -> None:  # noqa: ANN001
    from gaia_dagster.db.repository import ValidatorRepository

    repo = ValidatorRepository(url)
    barrier.wait()
    try:
        out.put(("ok", repo.advance_run(run_id, "scoring_era5")))
    except Exception as exc:  # noqa: BLE001 - reported to the test
        out.put(("error", f"{type(exc).__name__}: {exc}"))


def test_racing_workers_advance_a_run_once_and_none_fails(repo):
    run, _ = repo.get_or_create_run(T0)
    repo.advance_run(run.id, "awaiting_era5")
    ctx = mp.get_context("spawn")
    barrier, out = ctx.Barrier(WORKERS), ctx.Queue()
    workers = [ctx.Process(target=advance, args=(repo.url, run.id, barrier, out)) for _ in range(WORKERS)]
    for w in workers:
        w.start()
    results = [out.get(timeout=120) for _ in workers]
    for w in workers:
        w.join(timeout=60)
    assert [r for r in results if r[0] == "error"] == []
    assert sum(1 for _, moved in results if moved) == 1
    assert repo.run_by_id(run.id).status == "scoring_era5"
    accepted = [t for t in repo.transitions("run", run.id) if t.accepted and t.to_status == "scoring_era5"]
    assert len(accepted) == 1

"""Missed work with a grace window (requirement: missed-work-grace-and-fallback, section 1).

A miner that fails to deliver a run is recorded (its first missed run and consecutive misses);
it becomes inactive only once it has missed ``grace_runs`` runs in a row. A run's miss is counted
once however many paths report it, so a miner is never penalised twice for one run; delivering a
run makes it active again with a clean record (the per-epoch reset; an epoch here is a day's run).
"""

from __future__ import annotations

from dataclasses import dataclass

DEFAULT_GRACE_RUNS = 2


@dataclass(frozen=True)
class Liveness:
    active: bool = True
    consecutive_misses: int = 0
    first_missed_run_id: int | None = None
    last_missed_run_id: int | None = None


def record_miss(state: Liveness, run_id: int, grace_runs: int = DEFAULT_GRACE_RUNS) -> Liveness:
    """One miss per run: the first report counts, repeats change nothing (never penalised twice)."""
    if state.last_missed_run_id == run_id:
        return state
    misses = state.consecutive_misses + 1
    return Liveness(active=misses < grace_runs, consecutive_misses=misses,
                    first_missed_run_id=state.first_missed_run_id or run_id, last_missed_run_id=run_id)


def record_delivery(state: Liveness) -> Liveness:
    """A delivered run clears the record and makes the miner active again."""
    return Liveness()

"""The validator DB's part in finding copies by content (issue 18, ``core.copies``): each verified
forecast's fingerprint, recorded once, and a run's fingerprints read back together. All SQL of it
lives here."""

from __future__ import annotations

from datetime import timedelta

import numpy as np
from sqlalchemy import func, select

from gaia_dagster.db.models import ForecastFingerprint, ForecastRun
from gaia_dagster.db.repository import ValidatorRepository, now_utc, utc


def record_fingerprint(repo: ValidatorRepository, response_id: int, run_id: int, miner_hotkey: str, seed: str,
                       samples: np.ndarray) -> None:
    """Record a response's fingerprint once: a retried verification keeps the first (the frozen
    store is the same one)."""
    values = np.ascontiguousarray(samples, dtype="<f4")
    stmt = repo._insert(ForecastFingerprint).values(
        response_id=response_id, run_id=run_id, miner_hotkey=miner_hotkey, seed=seed,
        n_fields=int(values.shape[0]), n_points=int(values.shape[1]), samples=values.tobytes(),
        recorded_at=now_utc(),
    ).on_conflict_do_nothing()
    with repo.session() as s, s.begin():
        s.execute(stmt)


def run_fingerprints(repo: ValidatorRepository, run_id: int) -> dict[str, np.ndarray]:
    """Every fingerprint of a run, by miner hotkey (fields x points, float32)."""
    with repo.session() as s:
        rows = s.execute(select(ForecastFingerprint.miner_hotkey, ForecastFingerprint.n_fields,
                                ForecastFingerprint.n_points, ForecastFingerprint.samples)
                         .where(ForecastFingerprint.run_id == run_id)).all()
    return {hotkey: np.frombuffer(samples, dtype="<f4").reshape(k, n) for hotkey, k, n, samples in rows}


def fingerprinted_runs(repo: ValidatorRepository, window: timedelta | None = None) -> list[int]:
    """The runs holding at least two fingerprints, the only ones that can hold a copy pair; with
    ``window``, only those whose T0 is within it of the newest such run's."""
    query = (select(ForecastFingerprint.run_id, ForecastRun.gfs_init_time)
             .join(ForecastRun, ForecastRun.id == ForecastFingerprint.run_id)
             .group_by(ForecastFingerprint.run_id, ForecastRun.gfs_init_time).having(func.count() > 1))
    with repo.session() as s:
        runs = [(run_id, utc(t0)) for run_id, t0 in s.execute(query)]
    newest = max((t0 for _, t0 in runs), default=None)
    return sorted(run_id for run_id, t0 in runs if window is None or t0 >= newest - window)

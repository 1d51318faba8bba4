"""The score row a Gaia v2.9.96 validator writes for one run: what its weight path averages.

Gaia's weather task keeps one row per run in its score table (task id
``weather_scores_<run>_<GFS init as %Y%m%dT%H%MZ>``, created at the run's GFS init time), with one
entry per UID, rebuilt whenever the run's scores change (``update_combined_weather_scores``):

1. Only UIDs registered now count, each with the scores of the hotkey holding it now.
2. A miner with an overall score gets it clamped to [0, 1.1]; one without (ERA5 not in yet) gets
   0.05 when its day-1 score passed (>= 0.1), else 0.
3. Once any miner of the run has an overall score above 0.05, the best miner at or above 0.7 gets
   a 0.05 bonus (split between two tied; none when more than two tie).
4. Every entry is clamped to [0, 1.1]; UIDs without a miner are 0.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime

from gaia_dagster.core.weights_deployed import UIDS, ScoreRow

MAX_ROW_SCORE = 1.1
DAY1_PASS = 0.1
DAY1_ONLY_SCORE = 0.05
ERA5_PRESENT = 0.05
BONUS = 0.05
BONUS_MIN_SCORE = 0.7
BONUS_MAX_WINNERS = 2


@dataclass(frozen=True)
class RunMinerScore:
    """One miner of a run under the UID its hotkey holds now: its day-1 score and its overall
    score (None until ERA5 has scored it)."""

    uid: int
    day1: float | None
    overall: float | None


def run_task_id(run_id: int, gfs_init: datetime) -> str:
    """``weather_scores_<run>_<GFS init %Y%m%dT%H%MZ>``: one row per run, updated in place."""
    return f"weather_scores_{run_id}_{gfs_init:%Y%m%dT%H%MZ}"


def _clamp(value: float) -> float:
    return min(MAX_ROW_SCORE, max(0.0, value))


def base_entry(miner: RunMinerScore) -> float:
    """Rule 2: the clamped overall score, else 0.05 for a passed day-1, else 0."""
    if miner.overall is not None:
        return _clamp(float(miner.overall))
    return DAY1_ONLY_SCORE if miner.day1 is not None and float(miner.day1) >= DAY1_PASS else 0.0


def bonus_winners(entries: dict[int, float]) -> list[int]:
    """Rule 3's winners: the UIDs tied at the best finite entry >= 0.7, when at most two tie."""
    candidates = {uid: s for uid, s in entries.items() if math.isfinite(s) and s >= BONUS_MIN_SCORE}
    if not candidates:
        return []
    best = max(candidates.values())
    winners = [uid for uid, s in candidates.items() if s == best]
    return winners if len(winners) <= BONUS_MAX_WINNERS else []


def run_score_row(run_id: int, gfs_init: datetime, miners: list[RunMinerScore]) -> ScoreRow:
    """Rules 1-4: the run's score row as Gaia stores it (``miners`` holds the registered UIDs)."""
    entries = {m.uid: base_entry(m) for m in miners if 0 <= m.uid < UIDS}
    scores = [0.0] * UIDS
    for uid, value in entries.items():
        scores[uid] = value
    if any(m.overall is not None and float(m.overall) > ERA5_PRESENT for m in miners if 0 <= m.uid < UIDS):
        winners = bonus_winners(entries)
        for uid in winners:
            scores[uid] += BONUS / len(winners)
    return ScoreRow(run_task_id(run_id, gfs_init), gfs_init, [_clamp(s) for s in scores])

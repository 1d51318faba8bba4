"""The 15-day leaderboard with rank intervals (``core.scoring.ranks``): each miner's overall score
over the run's window, from the validator DB. It informs people; no weight or score reads it."""

from __future__ import annotations

from gaia_dagster.core.scoring.aggregate import LOOKBACK_DAYS
from gaia_dagster.core.scoring.ranks import RankedMiner, ranked_with_intervals
from gaia_dagster.db.repository import RunRecord, ValidatorRepository


def window_ranks(repo: ValidatorRepository, run: RunRecord) -> list[RankedMiner]:
    """The run's day and the 14 before it (the weights' look-back), each miner ranked by its mean
    overall score with its 90% rank interval and the test against the next miner down; the
    bootstrap is seeded by the run's key, so a rerun gives the same intervals. Needs the run's
    overall scores (``miner_scores`` writes them)."""
    totals = repo.total_scores(run.id, "overall")
    today = {r.miner_hotkey: totals.get(r.id) or 0.0 for r in repo.responses(run_id=run.id)}
    days = [*repo.overall_scores_before(run.gfs_init_time, LOOKBACK_DAYS - 1), today]
    return ranked_with_intervals(days, run.run_key)

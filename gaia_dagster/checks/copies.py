"""The copy check (issue 18, ``core.copies``): every pair of miners of a run whose forecasts are
near-identical by content, with the evidence (distance, threshold, the run's honest spread), and
whether each miner of the pair was refused.

A global invariant of the validator DB like the integrity checks: unpartitioned, over the runs of
``CHECKED_DAYS`` up to the newest (each run's pairs cost ~0.5 s at 256 miners). A
miner of a pair that holds an ERA5 score was not refused: the check fails. One refused at its next
stage (its partner came after its day-1) is listed as pending until then.
"""

from datetime import timedelta

from dagster import AssetCheckResult, AssetCheckSeverity, MetadataValue, asset_check

from gaia_dagster.core.copies import honest_spread
from gaia_dagster.core.states import ERA5_SCORED_STATUSES, ResponseStatus
from gaia_dagster.db.copies import fingerprinted_runs, run_fingerprints
from gaia_dagster.resources.validator_db import ValidatorDB
from gaia_dagster.stages.copies import run_copy_pairs


CHECKED_DAYS = timedelta(days=16)
"""Runs checked: those whose jobs can still be scored (the last ERA5 lead comes ~15.25 days after T0)."""


def _verdict(status: str | None) -> str:
    """What became of one miner of a copy pair."""
    if status == ResponseStatus.FAILED.value:
        return "refused"
    return "not refused" if status in ERA5_SCORED_STATUSES else "refusal pending (at its next stage)"


def copy_pair_rows(validator_db: ValidatorDB) -> list[dict]:
    """One row per copy pair of every run: the miners, the evidence and each miner's verdict."""
    repo = validator_db.repo
    rows = []
    for run_id in fingerprinted_runs(repo, window=CHECKED_DAYS):
        pairs = run_copy_pairs(repo, run_id)
        spread = honest_spread(run_fingerprints(repo, run_id), pairs) if pairs else None
        for p in pairs:
            a, b = repo.response_for(run_id, p.a), repo.response_for(run_id, p.b)
            rows.append({"run_id": run_id, "miner_a": p.a, "miner_b": p.b, "distance": p.distance,
                         "threshold": p.threshold, "honest_spread": spread, "fields": p.fields_compared,
                         "verdict_a": _verdict(a.status if a else None), "verdict_b": _verdict(b.status if b else None),
                         "who_copied": "undecidable: both refused alike"})
    return rows


@asset_check(asset="forecast_request", blocking=True, name="no_copied_forecasts",
             description="Lists every pair of miners whose forecasts of one run are near-identical by content "
                         "(distance below the threshold, against the run's honest spread); fails if a miner "
                         "of a pair holds an ERA5 score.")
def no_copied_forecasts(validator_db: ValidatorDB) -> AssetCheckResult:
    pairs = copy_pair_rows(validator_db)
    let_through = [p for p in pairs if "not refused" in (p["verdict_a"], p["verdict_b"])]
    summary = "; ".join(f"run {p['run_id']}: {p['miner_a']} ~ {p['miner_b']} (distance {p['distance']:.3g} < "
                        f"{p['threshold']:g})" for p in pairs[:10])
    return AssetCheckResult(
        passed=not let_through, severity=AssetCheckSeverity.ERROR,
        description=(f"{len(pairs)} copy pairs: {summary}" if pairs else "no copied forecasts")
                    + (f" ({len(let_through)} not refused)" if let_through else ""),
        metadata={"copy_pairs": len(pairs), "copies_not_refused": len(let_through),
                  "pairs": MetadataValue.json(pairs[:100])},
    )

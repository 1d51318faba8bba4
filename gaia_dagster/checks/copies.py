"""The copy check (issue 10): every pair of miners whose stores, frozen in the same run, hold the
same data chunks, and whether the copy (the later freeze) was refused.

A global invariant of the validator DB like the integrity checks: unpartitioned, over all runs.
"""

from dagster import AssetCheckResult, AssetCheckSeverity, MetadataValue, asset_check

from gaia_dagster.core.states import ResponseStatus
from gaia_dagster.resources.validator_db import ValidatorDB


@asset_check(asset="forecast_request", blocking=True, name="no_copied_forecasts",
             description="Lists every copy pair (original miner, copying miner) whose frozen stores hold "
                         "the same data chunks in one run; fails if a copy was not refused.")
def no_copied_forecasts(validator_db: ValidatorDB) -> AssetCheckResult:
    repo = validator_db.repo
    pairs = []
    for run_id, original, copier in repo.copy_pairs():
        row = repo.response_for(run_id, copier)
        pairs.append({"run_id": run_id, "original": original, "copy": copier,
                      "copy_status": row.status if row else None})
    let_through = [p for p in pairs if p["copy_status"] != ResponseStatus.FAILED.value]
    return AssetCheckResult(
        passed=not let_through, severity=AssetCheckSeverity.ERROR,
        description=(f"{len(pairs)} copy pairs: " + "; ".join(f"run {p['run_id']}: {p['copy']} copies miner "
                                                             f"{p['original']}" for p in pairs[:10])
                     if pairs else "no copied forecasts")
                    + (f" ({len(let_through)} not refused)" if let_through else ""),
        metadata={"copy_pairs": len(pairs), "copies_not_refused": len(let_through),
                  "pairs": MetadataValue.json(pairs[:100])},
    )

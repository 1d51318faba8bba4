"""Blocking checks that prove no job is duplicated and every job ID is deterministic.

They are global invariants of the validator DB, so they are unpartitioned and query all runs.
"""


from dagster import AssetCheckResult, AssetCheckSeverity, MetadataValue, asset_check

from gaia_dagster.resources.validator_db import ValidatorDB
from gaia_dagster.stages.replica import check_job_id_health


@asset_check(asset="forecast_request", blocking=True, name="no_duplicate_jobs",
             description="Verification query over all runs: no (run, miner) holds two jobs, no score "
                         "component is stored twice, and no duplicate was ever allowed through.")
def no_duplicate_jobs(validator_db: ValidatorDB) -> AssetCheckResult:
    repo = validator_db.repo
    jobs = repo.duplicate_jobs()
    scores = repo.duplicate_scores()
    counts = repo.duplicate_counts()
    detected = sum(n for (_, outcome), n in counts.items() if outcome == "detected")
    allowed = sum(n for (_, outcome), n in counts.items() if outcome == "allowed")
    passed = not jobs and not scores and allowed == 0
    return AssetCheckResult(
        passed=passed, severity=AssetCheckSeverity.ERROR,
        description=None if passed else f"{len(jobs)} duplicated jobs, {len(scores)} duplicated scores, "
                                        f"{allowed} duplicates allowed",
        metadata={
            "duplicate_jobs": len(jobs), "duplicate_score_components": len(scores),
            "duplicates_detected_total": detected, "duplicates_allowed_total": allowed,
            "examples": MetadataValue.json([list(map(str, j)) for j in jobs[:10]]),
        },
    )


@asset_check(asset="forecast_request", blocking=True, name="job_ids_deterministic",
             description="Recomputes every stored job ID from its run's GFS T0 and its miner; reports "
                         "the job-ID health of the last 24 h (mismatches, sync issues, validators).")
def job_ids_deterministic(validator_db: ValidatorDB) -> AssetCheckResult:
    repo = validator_db.repo
    mismatches = repo.job_id_mismatches()
    total = len(repo.responses())
    health = check_job_id_health(repo)
    return AssetCheckResult(
        passed=not mismatches, severity=AssetCheckSeverity.ERROR,
        description=None if not mismatches else f"{len(mismatches)} of {total} job IDs are not deterministic",
        metadata={"jobs_checked": total, "mismatches": len(mismatches),
                  **{f"health_{k}": v for k, v in health.stats.items()},
                  "examples": MetadataValue.json([{"row": r, "miner": m, "stored": s, "expected": e}
                                                  for r, m, s, e in mismatches[:10]])},
    )

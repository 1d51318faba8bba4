"""ERA5 availability, lead by lead: as each lead becomes scorable (ERA5 covers it and the delay has
passed), cache its truth, score it for every miner that passed day-1 (one run per miner per
arrival), then rebuild the day's leaderboard; the day completes when every lead is scored."""


from datetime import datetime

from dagster import (
    AssetKey, AssetRecordsFilter, DefaultSensorStatus, RunRequest, SensorEvaluationContext, SensorResult, SkipReason,
    sensor,
)

from gaia_dagster.core.scoring.era5_leads import leads_to_score
from gaia_dagster.core.states import TERMINAL_RESPONSE_STATUSES, ResponseStatus, RunStatus
from gaia_dagster.core.retry import StageRetry
from gaia_dagster.db.repository import RunRecord, ValidatorRepository, now_utc
from gaia_dagster.jobs import era5_score_job, era5_truth_job, miner_scores_job
from gaia_dagster.resources.sources import WeatherSources
from gaia_dagster.resources.validator_db import ValidatorDB
from gaia_dagster.resources.miner import MinerAccess
from gaia_dagster.sensors.intervals import sensor_interval
from gaia_dagster.sensors.orchestrate import selected_without_job
from gaia_dagster.sensors.poll import stage_run_request
from gaia_dagster.stages.attempts import ERA5, due_retries, held_by_own_retry
from gaia_dagster.stages.era5_arrivals import LEADS_CACHED, due_leads
from gaia_dagster.stages.lifecycle import advance_run

def truth_leads_cached(context: SensorEvaluationContext, date_key: str) -> int:
    """How many leads the latest ``era5_truth[date]`` materialization cached (0 when none)."""
    records = context.instance.fetch_materializations(
        AssetRecordsFilter(asset_key=AssetKey("era5_truth"), asset_partitions=[date_key]), limit=1).records
    if not records or records[0].asset_materialization is None:
        return 0
    entry = records[0].asset_materialization.metadata.get(LEADS_CACHED)
    return int(entry.value) if entry is not None else 0


def run_requests_for(repo: ValidatorRepository, run: RunRecord, due: tuple[int, ...], truth_leads: int,
                     retry: StageRetry, now: datetime) -> list[RunRequest]:
    """The next ERA5 step of one run, given the leads ``due`` now: the truth of the new leads
    first, then per-miner scoring of the leads each job lacks (and the retries that are due), then
    the leaderboard once every job is scored as far as ERA5 allows (a job waiting on its own retry
    does not hold it: ``stages.attempts.held_by_own_retry``)."""
    date_key = f"{run.gfs_init_time:%Y-%m-%d}"
    rows = repo.responses(run_id=run.id)
    if not rows:
        return []
    scored = repo.lead_scores(run.id, ERA5.name)
    behind = [r for r in rows if r.status in ERA5.startable and leads_to_score(due, scored.get(r.id, {}))]
    retries = [r for r in due_retries(rows, ERA5, retry, now) if r.status == ERA5.working]
    resting = set(ERA5.startable)
    in_flight = [r for r in rows if r.status not in TERMINAL_RESPONSE_STATUSES | resting and not held_by_own_retry(r)]
    if not due:
        if not in_flight and any(r.status == ERA5.ready for r in rows):
            advance_run(repo, run.id, RunStatus.AWAITING_ERA5)
        return []
    if (behind or retries) and truth_leads < len(due):
        return [RunRequest(run_key=f"{date_key}|era5_truth|L{len(due)}", partition_key=date_key,
                           job_name=era5_truth_job.name, tags={"gaia/stage": "era5_truth"})]
    if behind or retries:
        return [stage_run_request(r, "era5", r.era5_attempts + 1, era5_score_job.name, leads=len(due))
                for r in behind + [r for r in retries if r not in behind]]
    if not in_flight and not selected_without_job(repo, run) and run.status != RunStatus.COMPLETED.value:
        final = sum(1 for r in rows if r.status == ResponseStatus.ERA5_SCORED.value)
        failed = sum(1 for r in rows if r.status == ResponseStatus.FAILED.value)
        return [RunRequest(run_key=f"{date_key}|miner_scores|L{len(due)}|{final}|{failed}|{len(rows)}",
                           partition_key=date_key, job_name=miner_scores_job.name,
                           tags={"gaia/stage": "miner_scores", "gaia/era5_leads": str(len(due))})]
    return []


@sensor(name="era5_availability_sensor", minimum_interval_seconds=sensor_interval(300),
        jobs=[era5_truth_job, era5_score_job, miner_scores_job], default_status=DefaultSensorStatus.RUNNING,
        description="Watches ERA5 availability lead by lead; as each lead becomes scorable, materializes "
                    "era5_truth, then era5_score for every miner that passed day-1, then miner_scores.")
def era5_availability_sensor(context: SensorEvaluationContext, validator_db: ValidatorDB,
                             sources: WeatherSources, miner_access: MinerAccess) -> SensorResult | SkipReason:
    repo, now = validator_db.repo, now_utc()
    requests = []
    for run in repo.all_runs():
        if run.status in (RunStatus.COMPLETED.value, RunStatus.ERROR.value):
            continue
        date_key = f"{run.gfs_init_time:%Y-%m-%d}"
        requests += run_requests_for(repo, run, due_leads(sources, run.gfs_init_time, now),
                                     truth_leads_cached(context, date_key), miner_access.retry("era5"), now)
    if not requests:
        return SkipReason("no run has an ERA5 lead to score now")
    return SensorResult(run_requests=requests)

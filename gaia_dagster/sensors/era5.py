"""ERA5 availability: once the reanalysis reaches a run's last lead, cache it, score every miner
that passed day-1, then build the day's leaderboard."""


from datetime import timedelta

from dagster import AssetKey, DefaultSensorStatus, RunRequest, SensorEvaluationContext, SensorResult, SkipReason, sensor

from gaia_dagster.core.contract import ERA5_LEAD_HOURS
from gaia_dagster.core.states import TERMINAL_RESPONSE_STATUSES
from gaia_dagster.core.retry import StageRetry
from gaia_dagster.db.repository import RunRecord, ValidatorRepository, now_utc
from gaia_dagster.jobs import era5_score_job, era5_truth_job, miner_scores_job
from gaia_dagster.resources.sources import WeatherSources
from gaia_dagster.resources.validator_db import ValidatorDB
from gaia_dagster.resources.miner import MinerAccess
from gaia_dagster.sensors.intervals import sensor_interval
from gaia_dagster.sensors.orchestrate import selected_without_job
from gaia_dagster.sensors.poll import stage_run_request
from gaia_dagster.stages.attempts import ERA5, due_retries

WAITING_FOR_ERA5 = frozenset({ERA5.ready})


def era5_covers(sources: WeatherSources, run: RunRecord) -> bool:
    """True when ERA5 reaches the run's last scored valid time (T0 + 240 h)."""
    until = sources.era5().available_until()
    return until is not None and until >= run.gfs_init_time + timedelta(hours=max(ERA5_LEAD_HOURS))


def run_requests_for(context: SensorEvaluationContext, repo: ValidatorRepository, sources: WeatherSources,
                     run: RunRecord, truth_done: set[str], retry: StageRetry) -> list[RunRequest]:
    """The next ERA5 step of one run: truth first, then per-miner scores (first attempts, and the
    retries that are due), then the leaderboard."""
    date_key = f"{run.gfs_init_time:%Y-%m-%d}"
    rows = repo.responses(run_id=run.id)
    if not rows:
        return []
    waiting = [r for r in rows if r.status in WAITING_FOR_ERA5]
    retries = [r for r in due_retries(rows, ERA5, retry, now_utc()) if r.status == ERA5.working]
    in_flight = [r for r in rows if r.status not in TERMINAL_RESPONSE_STATUSES | WAITING_FOR_ERA5]
    if (waiting or retries) and not era5_covers(sources, run):
        if not in_flight:
            repo.advance_run(run.id, "awaiting_era5")
        return []
    if (waiting or retries) and date_key not in truth_done:
        return [RunRequest(run_key=f"{date_key}|era5_truth", partition_key=date_key,
                           job_name=era5_truth_job.name, tags={"gaia/stage": "era5_truth"})]
    if waiting or retries:
        return [stage_run_request(r, "era5", r.era5_attempts + 1, era5_score_job.name) for r in waiting + retries]
    if not in_flight and not selected_without_job(repo, run) and run.status != "completed":
        scored = sum(1 for r in rows if r.status == "era5_scored")
        return [RunRequest(run_key=f"{date_key}|miner_scores|{scored}|{len(rows)}", partition_key=date_key,
                           job_name=miner_scores_job.name, tags={"gaia/stage": "miner_scores"})]
    return []


@sensor(name="era5_availability_sensor", minimum_interval_seconds=sensor_interval(300),
        jobs=[era5_truth_job, era5_score_job, miner_scores_job], default_status=DefaultSensorStatus.RUNNING,
        description="Watches ERA5 availability; materializes era5_truth, then era5_score for every miner "
                    "that passed day-1, then miner_scores once every job of the run is final.")
def era5_availability_sensor(context: SensorEvaluationContext, validator_db: ValidatorDB,
                             sources: WeatherSources, miner_access: MinerAccess) -> SensorResult | SkipReason:
    repo = validator_db.repo
    truth_done = set(context.instance.get_materialized_partitions(AssetKey("era5_truth")))
    requests = []
    for run in repo.all_runs():
        if run.status in ("completed", "error"):
            continue
        requests += run_requests_for(context, repo, sources, run, truth_done, miner_access.retry("era5"))
    if not requests:
        return SkipReason("no run is waiting on ERA5")
    return SensorResult(run_requests=requests)

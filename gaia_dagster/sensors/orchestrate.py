"""Orchestration (the plan's singleton stage): select the run's miners, then one forecast request
per selected miner that has no job yet."""

from typing import Callable

from dagster import DefaultSensorStatus, RunRequest, RunsFilter, SensorEvaluationContext, SensorResult, SkipReason, sensor

from gaia_dagster.assets.partitions import date_miner_key, miner_partitions
from gaia_dagster.core.selection import Candidate, select_miners
from gaia_dagster.db.repository import RunRecord, ValidatorRepository
from gaia_dagster.core.states import ResponseStatus, RunStatus
from gaia_dagster.jobs import forecast_request_job, integrity_checks_job
from gaia_dagster.resources.validator_db import ValidatorDB
from gaia_dagster.sensors.intervals import sensor_interval
from gaia_dagster.sensors.poll import ACTIVE_RUN_STATUSES

# A selected miner is asked whenever its day is live: a request that died is relaunched even after
# other miners' scoring has moved the run on.
QUERYABLE_RUN_STATUSES = tuple(s.value for s in (RunStatus.GFS_READY, RunStatus.QUERYING_MINERS, RunStatus.SCORING_DAY1,
                                                  RunStatus.AWAITING_ERA5, RunStatus.SCORING_ERA5))
MAX_REQUEST_RUNS = 3


def run_selection(repo: ValidatorRepository, run: RunRecord, partitioned: set[str]) -> list[str]:
    """The run's selected miners: computed once from the seeded order and recorded with the skipped
    ones, among the miners the registry lists now (one that left keeps its history, unselected); a
    skipped inactive miner has served its penalty and starts the next run clean."""
    recorded = repo.selection(run.id)
    if not recorded:
        candidates = [Candidate(m.hotkey, m.active) for m in repo.miners() if m.hotkey in partitioned and m.listed]
        selection = select_miners(run.run_key, candidates)
        repo.record_selection(run.id, selection)
        for hotkey, _ in selection.skipped:
            repo.reset_liveness(hotkey)
        recorded = repo.selection(run.id)
    return [r.miner_hotkey for r in recorded if r.selected]


def requests_settled(repo: ValidatorRepository, run: RunRecord) -> bool:
    """Rule: a run's request batch is settled once every selected miner has a job past ``created``
    (accepted, or failed for good)."""
    selected = {r.miner_hotkey for r in repo.selection(run.id) if r.selected}
    rows = {r.miner_hotkey: r for r in repo.responses(run_id=run.id)}
    return bool(selected) and all(h in rows and rows[h].status != ResponseStatus.CREATED.value for h in selected)


def integrity_check_requests(repo: ValidatorRepository) -> list[RunRequest]:
    """One run of the integrity checks per day, once its forecast requests have settled."""
    return [RunRequest(run_key=f"{run.gfs_init_time:%Y-%m-%d}|integrity|requests", job_name=integrity_checks_job.name,
                       tags={"gaia/stage": "integrity", "gaia/date": f"{run.gfs_init_time:%Y-%m-%d}"})
            for run in repo.all_runs() if run.status not in (RunStatus.COMPLETED.value, RunStatus.ERROR.value) and requests_settled(repo, run)]


def selected_without_job(repo: ValidatorRepository, run: RunRecord) -> list[str]:
    """Selected miners of a run that have no job row yet (their request has not run, or died first)."""
    have = {r.miner_hotkey for r in repo.responses(run_id=run.id)}
    return [r.miner_hotkey for r in repo.selection(run.id) if r.selected and r.miner_hotkey not in have]


def forecast_requests(repo: ValidatorRepository, partitioned: set[str],
                      request_runs: Callable[[str], tuple[bool, int]]) -> list[RunRequest]:
    """Requests for every (live run, selected miner) that has no job yet (check before execute).
    ``request_runs(partition)`` says whether a request run for it is active and how many ended:
    a request run that died before the job existed is launched again, at most ``MAX_REQUEST_RUNS``
    times in all (a run key is never reused, so each relaunch has its own)."""
    requests = []
    for run in repo.all_runs():
        if run.status not in QUERYABLE_RUN_STATUSES:
            continue
        date_key = f"{run.gfs_init_time:%Y-%m-%d}"
        run_selection(repo, run, partitioned)
        for hotkey in selected_without_job(repo, run):
            partition = date_miner_key(date_key, hotkey)
            busy, ended = request_runs(str(partition))
            if busy or ended >= MAX_REQUEST_RUNS:
                continue
            key = f"{date_key}|{hotkey}|query|1" + (f"|relaunch{ended}" if ended else "")
            requests.append(RunRequest(run_key=key, partition_key=partition, job_name=forecast_request_job.name,
                                       tags={"gaia/stage": "query", "gaia/miner": hotkey}))
    return requests


@sensor(name="miner_orchestration_sensor", minimum_interval_seconds=sensor_interval(30),
        jobs=[forecast_request_job, integrity_checks_job],
        default_status=DefaultSensorStatus.RUNNING,
        description="For each seeded run: selects miners in an order seeded by the run's deterministic ID "
                    "(inactive ones skipped and recorded), then requests a forecast from each selected miner "
                    "that has no job yet; runs the integrity checks once the day's requests have settled.")
def miner_orchestration_sensor(context: SensorEvaluationContext, validator_db: ValidatorDB) -> SensorResult | SkipReason:
    partitioned = set(context.instance.get_dynamic_partitions(miner_partitions.name))
    def request_runs(partition: str) -> tuple[bool, int]:
        runs = context.instance.get_runs(RunsFilter(tags={"dagster/partition": partition, "gaia/stage": "query"}))
        busy = any(r.status in ACTIVE_RUN_STATUSES for r in runs)
        return busy, sum(1 for r in runs if r.status not in ACTIVE_RUN_STATUSES)

    requests = forecast_requests(validator_db.repo, partitioned, request_runs) + integrity_check_requests(validator_db.repo)
    if not requests:
        return SkipReason("every seeded run has a job for every selected miner")
    return SensorResult(run_requests=requests)

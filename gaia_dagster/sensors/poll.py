"""Forecast poll: poll in-flight jobs and launch verification + day-1 for completed ones; launch the
next initiate-fetch or day-1 attempt when one is due.

Run keys are built from (date, miner, stage, attempt): Dagster never reuses a run key, so a failed
run is retried under the next attempt's key, never under its own.
"""


from dagster import (
    AssetKey, DagsterRunStatus, DefaultSensorStatus, RunRequest, RunsFilter, SensorEvaluationContext, SensorResult,
    SkipReason, sensor,
)

from gaia_dagster.assets.partitions import date_miner_key
from gaia_dagster.core.answers import stored_text
from gaia_dagster.core.states import ResponseStatus
from gaia_dagster.db.repository import ResponseRecord, now_utc
from gaia_dagster.jobs import forecast_job, forecast_request_job
from gaia_dagster.resources.miner import MinerAccess
from gaia_dagster.resources.validator_db import ValidatorDB
from gaia_dagster.sensors.intervals import sensor_interval
from gaia_dagster.stages.attempts import DAY1, attempts_of, due_retries
from gaia_dagster.stages.poll import FAILED, READY, poll_in_flight

ACTIVE_RUN_STATUSES = [DagsterRunStatus.QUEUED, DagsterRunStatus.NOT_STARTED, DagsterRunStatus.STARTING,
                       DagsterRunStatus.STARTED, DagsterRunStatus.CANCELING]


def partition_of(row: ResponseRecord) -> str:
    """The date x miner partition key of a job, as Dagster tags runs with it."""
    return str(date_miner_key(f"{row.gfs_init_time:%Y-%m-%d}", row.miner_hotkey))


LANE_TAG, SLOW_LANE = "gaia/lane", "slow"
"""Runs of a job whose store reads below the fast lane's floor carry ``gaia/lane: slow``; the
instance limits how many run at once (``dagster.yaml``), so slow stores never take every slot."""


def busy_partitions(context: SensorEvaluationContext) -> set[str]:
    """Every partition a run is queued for or running (one query a tick): its job is neither polled
    nor launched again until that run ends (a slow-lane run may wait long in the queue)."""
    runs = context.instance.get_runs(filters=RunsFilter(statuses=ACTIVE_RUN_STATUSES))
    return {r.tags["dagster/partition"] for r in runs if "dagster/partition" in r.tags}


def stage_run_request(row: ResponseRecord, stage: str, attempt: int, job_name: str,
                      assets: list[str] | None = None, leads: int | None = None) -> RunRequest:
    """A run for one (date, miner) stage, keyed by its attempt (``assets``: a subset of the job);
    a progressive ERA5 run is keyed by the number of leads due too (one run per arrival)."""
    date_key = f"{row.gfs_init_time:%Y-%m-%d}"
    arrival = f"L{leads}|" if leads is not None else ""
    slow = row.slow_store_at is not None   # a read moved to the slow lane gave its attempt back: a key of its own
    return RunRequest(
        run_key=f"{date_key}|{row.miner_hotkey}|{stage}|{arrival}{attempt}{'|' + SLOW_LANE if slow else ''}",
        partition_key=date_miner_key(date_key, row.miner_hotkey),
        job_name=job_name,
        asset_selection=[AssetKey(a) for a in assets] if assets else None,
        tags={"gaia/stage": stage, "gaia/miner": row.miner_hotkey, "gaia/job_id": row.job_id,
              "gaia/attempt": str(attempt), **({LANE_TAG: SLOW_LANE} if slow else {})},
    )


def query_retries_due(rows: list[ResponseRecord], now) -> list[ResponseRecord]:  # noqa: ANN001
    """Jobs whose initiate-fetch failed, or that were created and never claimed (found by the
    reaper), and whose next attempt has come."""
    return [r for r in rows if r.status == ResponseStatus.CREATED.value
            and r.next_attempt_at is not None and r.next_attempt_at <= now]


def query_run_request(row: ResponseRecord) -> RunRequest:
    """The run of a job's next initiate-fetch; an orphan's first is keyed by when the reaper found
    it (the orchestration sensor's key of attempt 1 is spent, and a run key is never reused)."""
    request = stage_run_request(row, "query", row.query_attempts + 1, forecast_request_job.name)
    if row.query_attempts == 0 and row.next_attempt_at is not None:
        return request.with_replaced_attrs(run_key=f"{request.run_key}|orphan{row.next_attempt_at:%Y%m%dT%H%M%S}")
    return request


@sensor(name="forecast_poll_sensor", minimum_interval_seconds=sensor_interval(30),
        jobs=[forecast_job, forecast_request_job], default_status=DefaultSensorStatus.RUNNING,
        description="Polls every in-flight forecast job concurrently; launches miner_forecast + day1_score "
                    "for completed ones (and for failed ones, whose run fails with the reason), and the next "
                    "initiate-fetch or day-1 attempt when one is due.")
def forecast_poll_sensor(context: SensorEvaluationContext, validator_db: ValidatorDB,
                         miner_access: MinerAccess) -> SensorResult | SkipReason:
    repo = validator_db.repo
    now = now_utc()
    busy = busy_partitions(context)
    decisions = poll_in_flight(repo, miner_access.client(), miner_access.retry("poll"), None, now,
                               miner_access.poll_concurrency, held=lambda row: partition_of(row) in busy)
    requests = []

    def launch(row: ResponseRecord, request: RunRequest) -> None:
        """One run per partition at a time (the instance's tag limit says so too)."""
        if partition_of(row) not in busy:
            busy.add(partition_of(row))
            requests.append(request)

    for decision in decisions:
        context.log.info(stored_text(f"{decision.response.miner_hotkey}: {decision.action} {decision.detail}"))
        row = decision.response
        # ready: verify and score; failed (the miner gave up, or no forecast after the last poll):
        # the same run, which fails with the job's reason, so the miner's partition shows failed
        if decision.action in (READY, FAILED):
            launch(row, stage_run_request(row, "forecast", row.poll_attempts, forecast_job.name))
    for row in query_retries_due(repo.responses(statuses=[ResponseStatus.CREATED.value]), now):
        requests.append(query_run_request(row))
    day1_rows = repo.responses(statuses=[DAY1.ready, DAY1.working])
    for row in due_retries(day1_rows, DAY1, miner_access.retry("day1"), now):
        launch(row, stage_run_request(row, "day1", attempts_of(row, "day1") + 1, forecast_job.name, ["day1_score"]))
    if not requests and not decisions:
        return SkipReason("no job in flight")
    return SensorResult(run_requests=requests)

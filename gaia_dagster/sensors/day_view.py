"""Keeps ``day_view[date]`` current: one run when a live day's jobs changed, at most every 30 s. A day
is live while it runs, for the 16 days ERA5 takes, and on a day its jobs changed (a backfill)."""

import hashlib
from datetime import timedelta

from dagster import DefaultSensorStatus, RunRequest, SensorEvaluationContext, SensorResult, SkipReason, sensor

from gaia_dagster.core.states import RunStatus
from gaia_dagster.db.day_view import runs_touched_since
from gaia_dagster.db.repository import now_utc
from gaia_dagster.jobs import day_view_job
from gaia_dagster.resources.validator_db import ValidatorDB
from gaia_dagster.sensors.intervals import sensor_interval

LIVE_DAYS = timedelta(days=16)   # ERA5 scores a day for about 15 days after T0
RECENT = timedelta(days=1)


def day_digest(repo, run_id: int) -> str:  # noqa: ANN001
    """What the view shows changes when a job's status, error or update time does."""
    parts = [f"{r.id}:{r.status}:{r.updated_at}" for r in repo.responses(run_id=run_id)]
    return hashlib.sha256("|".join(parts).encode()).hexdigest()[:16]


@sensor(name="day_view_sensor", minimum_interval_seconds=max(30, sensor_interval(60)), job=day_view_job,
        default_status=DefaultSensorStatus.RUNNING,
        description="Refreshes day_view for each day still being scored when its jobs changed.")
def day_view_sensor(context: SensorEvaluationContext, validator_db: ValidatorDB) -> SensorResult | SkipReason:
    repo, now = validator_db.repo, now_utc()
    touched = runs_touched_since(repo, now - RECENT)
    requests = []
    for run in repo.all_runs():
        # live: still running, inside ERA5's 15 days, or changed today (a backfilled day, just finished)
        live = run.status != RunStatus.COMPLETED.value or run.gfs_init_time >= now - LIVE_DAYS or run.id in touched
        if not live or run.status == RunStatus.ERROR.value:
            continue
        date_key = f"{run.gfs_init_time:%Y-%m-%d}"
        requests.append(RunRequest(run_key=f"{date_key}|day_view|{day_digest(repo, run.id)}", partition_key=date_key,
                                   tags={"gaia/stage": "day_view"}))
    return SensorResult(run_requests=requests) if requests else SkipReason("no day is live")

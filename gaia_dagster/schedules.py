"""The daily 18:00 UTC schedule: seed the day's run (T0 = that day 00 UTC).

A Dagster schedule targets one job, and a job's assets share one partitions definition, so the
schedule materializes ``gfs_seed[date]`` and the orchestration sensor (the plan's singleton
"orchestrate" stage) turns each seeded run into one forecast request per active miner.
"""


from dagster import DefaultScheduleStatus, RunRequest, ScheduleEvaluationContext, schedule

from gaia_dagster.jobs import daily_seed_job

DAILY_CRON = "0 18 * * *"

def seed_run_request(date_key: str) -> RunRequest:
    """The one gfs_seed run of a day (run key = date: a second tick never launches another)."""
    return RunRequest(run_key=f"{date_key}|gfs_seed", partition_key=date_key, tags={"gaia/stage": "gfs_seed"})


@schedule(name="daily_forecast_schedule", cron_schedule=DAILY_CRON, execution_timezone="UTC", job=daily_seed_job,
          default_status=DefaultScheduleStatus.RUNNING,
          description="18:00 UTC: seed the day's run; the orchestration sensor then requests a forecast "
                      "from every active miner.")
def daily_forecast_schedule(context: ScheduleEvaluationContext) -> RunRequest:
    return seed_run_request(context.scheduled_execution_time.strftime("%Y-%m-%d"))

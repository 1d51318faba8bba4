"""Drive a day through a real Dagster instance without the daemon: evaluate the schedule and
sensors as the daemon would, and execute each run request on the instance (in process).

Runs land in the instance's run storage with their run key, partition and tags, so the Dagster
UI on the same ``DAGSTER_HOME`` shows them. As with the daemon, a run key is launched at most once.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from dagster import (
    DagsterInstance, Definitions, RunRequest, RunsFilter, build_schedule_context, build_sensor_context,
    partition_loading_context,
)

RUN_KEY_TAG = "dagster/run_key"


@dataclass(frozen=True)
class Launched:
    run_key: str
    run_id: str | None
    success: bool
    skipped: bool = False


class DayDriver:
    def __init__(self, instance: DagsterInstance, defs: Definitions, log_level: str = "DEBUG"):
        self.instance = instance
        self.defs = defs
        self.run_config = {"loggers": {"console": {"config": {"log_level": log_level}}}}
        self.job = defs.resolve_implicit_global_asset_job_def()

    def tick_sensor(self, name: str) -> list[RunRequest]:
        """Evaluate one sensor tick; returns its run requests (dynamic partitions are added by the sensor)."""
        sensor_def = self.defs.resolve_sensor_def(name)
        context = build_sensor_context(instance=self.instance, definitions=self.defs, sensor_name=name,
                                       resources=self.defs.resources)
        with partition_loading_context(dynamic_partitions_store=self.instance):
            data = sensor_def.evaluate_tick(context)
        return list(data.run_requests or [])

    def tick_schedule(self, name: str, scheduled_time: datetime) -> list[RunRequest]:
        """Evaluate the schedule as at ``scheduled_time``."""
        schedule_def = self.defs.resolve_schedule_def(name)
        repo_def = self.defs.get_repository_def()
        context = build_schedule_context(instance=self.instance, scheduled_execution_time=scheduled_time,
                                         repository_def=repo_def, resources=self.defs.resources)
        with partition_loading_context(dynamic_partitions_store=self.instance):
            data = schedule_def.evaluate_tick(context)
        return [r.with_replaced_attrs(job_name=r.job_name or schedule_def.job_name) for r in data.run_requests or []]

    def already_launched(self, run_key: str) -> bool:
        return bool(self.instance.get_runs(filters=RunsFilter(tags={RUN_KEY_TAG: run_key}), limit=1))

    def launch(self, request: RunRequest) -> Launched:
        """Execute one run request on the instance, unless its run key was launched before."""
        key = request.run_key or ""
        if key and self.already_launched(key):
            return Launched(key, None, True, skipped=True)
        tags = {**(request.tags or {}), **({RUN_KEY_TAG: key} if key else {})}
        job = self.defs.resolve_job_def(request.job_name) if request.job_name else self.job
        result = job.execute_in_process(
            run_config=self.run_config, instance=self.instance, partition_key=str(request.partition_key) if request.partition_key else None,
            asset_selection=list(request.asset_selection) if request.asset_selection else None, tags=tags,
            raise_on_error=False,
        )
        return Launched(key, result.run_id, result.success)

    def launch_all(self, requests: list[RunRequest]) -> list[Launched]:
        return [self.launch(r) for r in requests]

"""What every per-miner asset shares: the validator DB row behind its partition, and failures that
end the run with one line naming the miner, the run and what was wrong (no traceback)."""

from __future__ import annotations

import time
from contextlib import contextmanager
from typing import Iterator

from dagster import AssetExecutionContext, Failure

from gaia_dagster.assets.partitions import gfs_init_time, split_key
from gaia_dagster.db.repository import ResponseRecord, ValidatorRepository
from gaia_dagster.resources.miner_client import MinerClientError
from gaia_dagster.resources.validator_db import ValidatorDB
from gaia_dagster.stages.attempts import ForecastRejected, StageRefused, ValidatorFault

# Outcomes a validator expects every day: they fail the run with their reason, never a traceback.
EXPECTED_FAILURES = (ForecastRejected, StageRefused, ValidatorFault, MinerClientError)
STAGE_CPU_TAG = "gaia/stage_cpu_s"


def response_for_partition(validator_db: ValidatorDB, partition_key) -> tuple[ValidatorRepository, ResponseRecord]:  # noqa: ANN001
    """The validator DB row behind a date x miner partition (it must exist by now)."""
    repo = validator_db.repo
    date_key, hotkey = split_key(partition_key)
    run = repo.run_for_init_time(gfs_init_time(date_key))
    row = repo.response_for(run.id, hotkey) if run else None
    if row is None:
        raise Failure(f"miner {hotkey}, run {date_key}: no forecast job exists; request it first",
                      allow_retries=False)
    return repo, row


@contextmanager
def stage_call(context: AssetExecutionContext) -> Iterator[None]:
    """Call a validator stage from an asset: an expected failure (a miner's fault, a recorded
    validator fault, nothing to score) ends the run in one line; anything else propagates with its
    traceback (a bug). The stage's own CPU time is added to the run's ``gaia/stage_cpu_s`` tag, so
    what a run costs beyond its work (orchestration) can be told apart."""
    started = time.process_time()
    try:
        yield
    except EXPECTED_FAILURES as exc:
        message = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        context.log.warning(message)
        raise Failure(description=message, allow_retries=False) from None
    finally:
        _add_stage_cpu(context, time.process_time() - started)


def _add_stage_cpu(context: AssetExecutionContext, seconds: float) -> None:
    """Accumulate a stage's CPU time on its run (a run may hold two stages)."""
    run = context.instance.get_run_by_id(context.run_id)
    before = float(run.tags.get(STAGE_CPU_TAG, 0.0)) if run else 0.0
    context.instance.add_run_tags(context.run_id, {STAGE_CPU_TAG: f"{before + seconds:.3f}"})

"""What every per-miner asset shares: the validator DB row behind its partition, and failures that
end the run with one line naming the miner, the run and what was wrong (no traceback)."""

from __future__ import annotations

import time
from contextlib import contextmanager
from typing import Iterator

from dagster import AssetExecutionContext, Failure
from sqlalchemy.exc import SQLAlchemyError

from gaia_dagster.assets.partitions import gfs_init_time, split_key
from gaia_dagster.db.repository import ResponseRecord, RunRecord, ValidatorRepository
from gaia_dagster.resources.identity import ValidatorIdentityError
from gaia_dagster.resources.local_faults import ValidatorSideError
from gaia_dagster.resources.miner_client import MinerClientError
from gaia_dagster.resources.validator_db import ValidatorDB
from gaia_dagster.stages.attempts import ForecastRejected, StageRefused, ValidatorFault

# Outcomes a validator expects every day: they fail the run with their reason, never a traceback.
EXPECTED_FAILURES = (ForecastRejected, StageRefused, ValidatorFault, MinerClientError)
# The validator's own side failing outside a stage's attempt (its DB unreachable or dropped mid-
# transaction, its identity unusable, its disk): no miner is blamed, the job is left as it was.
VALIDATOR_SIDE = (SQLAlchemyError, ValidatorIdentityError, ValidatorSideError, OSError)
STAGE_CPU_TAG = "gaia/stage_cpu_s"


def run_for_partition(validator_db: ValidatorDB, date_key: str) -> tuple[ValidatorRepository, RunRecord]:
    """The validator DB's run behind a daily partition (it must exist: ``gfs_seed`` creates it)."""
    repo = validator_db.repo
    run = repo.run_for_init_time(gfs_init_time(date_key))
    if run is None:
        raise Failure(f"run {date_key}: no run exists for this date yet; materialize gfs_seed first",
                      allow_retries=False)
    return repo, run


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
        side = "validator" if isinstance(exc, ValidatorFault) else "nobody" if isinstance(exc, StageRefused) else "miner"
        raise Failure(description=message, metadata={"fault_of": side}, allow_retries=False) from None
    except VALIDATOR_SIDE as exc:
        raise validator_side_failure(context, exc) from exc
    finally:
        _add_stage_cpu(context, time.process_time() - started)


def validator_side_failure(context: AssetExecutionContext, exc: BaseException) -> Failure:
    """Rule (faults are the validator's): the run fails naming the fault as the validator's own;
    no miner's job is failed for it, and the stage's next attempt, the reaper or a rerun carries it on."""
    first = (str(exc).splitlines() or [""])[0][:400]
    message = (f"validator-side fault, not the miner's ({type(exc).__name__}: {first}); partition "
               f"{context.partition_key}: no miner is failed for it, the job is left as it was and retried")
    context.log.error(message)
    return Failure(description=message, metadata={"fault_of": "validator", "error_type": type(exc).__name__},
                   allow_retries=False)


def _add_stage_cpu(context: AssetExecutionContext, seconds: float) -> None:
    """Accumulate a stage's CPU time on its run (a run may hold two stages)."""
    run = context.instance.get_run_by_id(context.run_id)
    before = float(run.tags.get(STAGE_CPU_TAG, 0.0)) if run else 0.0
    context.instance.add_run_tags(context.run_id, {STAGE_CPU_TAG: f"{before + seconds:.3f}"})

"""Stage ``forecast``: fetch the token and manifest, verify them, check the store's contract.

Verification order (GAIA_SPEC 2): manifest hash, signer, signature, then every chunk read is
re-hashed against the manifest. A forecast that fails any of it fails the miner with the reason;
a network error is left to the stage's retries.
"""

from __future__ import annotations

import weakref
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Iterator, Sequence

import xarray as xr

from gaia_dagster.core.contract import ALL_VARIABLES, Grid, contract_problems
from gaia_dagster.core.manifest import STORE_CHANGED, ManifestError, PinnedManifest
from gaia_dagster.db.repository import ResponseRecord, ValidatorRepository, now_utc
from gaia_dagster.resources.cache import private_dir
from gaia_dagster.resources.local_faults import ValidatorSideError, as_validator_side
from gaia_dagster.resources.miner_client import MinerClient, MinerClientError, SlowStore
from gaia_dagster.resources.store_fetch import VerifiedStore, fetch_verified_store
from gaia_dagster.resources.store_reader import FetchLimits
from gaia_dagster.core.states import ResponseStatus
from gaia_dagster.stages import copies
from gaia_dagster.stages.attempts import ForecastRejected, StageRefused, ValidatorFault, is_past, who
from gaia_dagster.stages.lifecycle import fail_job, forecast_verified
from gaia_dagster.stages.poll import UNVERIFIED


@dataclass(frozen=True)
class VerifiedForecast:
    response: ResponseRecord
    manifest_hash: str
    files_fetched: int
    bytes_fetched: int
    outcome: str  # verified | already_verified


def mirror_dir(root: Path, row: ResponseRecord, part: str) -> Path:
    """Where the verified copies of a miner's store are kept: one folder per job and purpose, in
    which every fetch gets a private folder of its own (``resources/cache.py`` ``private_dir``)."""
    return root / "forecasts" / f"{row.gfs_init_time:%Y%m%d%H}" / row.miner_hotkey / part


def lane_limits(client: MinerClient, row: ResponseRecord) -> FetchLimits:
    """Rule (run slots shared fairly, issue 18): a job's store is read in the fast lane, under the
    client's floor, until one read falls below it; from then on (``slow_store_at``) every read of
    the job is in the slow lane, bounded by the deadline alone."""
    return FetchLimits(floor=None if row.slow_store_at is not None else client.store_floor)


def _mirror(client: MinerClient, row: ResponseRecord, root: Path, part: str, time_indices: Sequence[int],
            run_start: datetime | None, pinned: PinnedManifest | None = None, grid: Grid | None = None,
            planes: Sequence[tuple[str, tuple[int, ...]]] = ()) -> tuple[xr.Dataset, VerifiedStore, weakref.finalize]:
    """Rule (mirrors are never shared): mirror into a private folder of this fetch and open it; the
    folder is removed by the returned finalizer, called at the latest when the dataset is collected.
    A store that passed every check yet cannot be opened is the miner's fault, named; the
    validator's own disk failing (full, unwritable, unreadable) is a ``ValidatorSideError``."""
    try:
        dest, release = private_dir(mirror_dir(root, row, part))
    except OSError as exc:
        raise (as_validator_side(exc, "made the store's mirror folder") or exc) from exc
    try:
        store = fetch_verified_store(client, row.miner_base_url, row.miner_hotkey, row.job_id, dest,
                                     time_indices=list(time_indices), run_start=run_start, pinned=pinned, grid=grid,
                                     limits=lane_limits(client, row), planes=planes)
        dataset = _open(dest, row)
    except ManifestError as exc:
        release()
        raise (as_validator_side(exc, "mirrored the store") or ForecastRejected(f"{who(row)}: {exc}")) from exc
    except BaseException:
        release()
        raise
    return dataset, store, weakref.finalize(dataset, release)


def _open(dest: Path, row: ResponseRecord) -> xr.Dataset:
    """Open a verified mirror; any error doing so (the store's metadata) is the miner's, named."""
    try:
        return xr.open_zarr(dest, consolidated=True)
    except Exception as exc:  # noqa: BLE001 - isolation rule: a miner's store fails only that miner
        local = as_validator_side(exc, "opened the store's mirror")
        if local is not None:
            raise local from exc
        raise ForecastRejected(f"{who(row)}: the store does not open as Zarr: {type(exc).__name__}: "
                               f"{str(exc)[:300]}") from exc


def fetch_fields(client: MinerClient, row: ResponseRecord, root: Path, part: str,
                 time_indices: Sequence[int], run_start: datetime | None = None,
                 pinned: PinnedManifest | None = None, grid: Grid | None = None) -> tuple[xr.Dataset, VerifiedStore]:
    """Mirror the chunks of ``time_indices`` (each verified against the manifest) and open them;
    with ``run_start``, a manifest read after the freeze window is refused; with ``pinned`` (the
    manifest frozen at verification), a store that changed since is refused. Each call mirrors into
    its own folder, removed once the returned dataset is garbage collected (keep it referenced while
    reading lazily from it); ``mirrored_fields`` removes it at the end of a ``with`` block."""
    dataset, store, _ = _mirror(client, row, root, part, time_indices, run_start, pinned, grid)
    return dataset, store


@contextmanager
def mirrored_fields(client: MinerClient, row: ResponseRecord, root: Path, part: str, time_indices: Sequence[int],
                    run_start: datetime | None = None, pinned: PinnedManifest | None = None,
                    grid: Grid | None = None, planes: Sequence[tuple[str, tuple[int, ...]]] = (),
                    ) -> Iterator[tuple[xr.Dataset, VerifiedStore]]:
    """``fetch_fields`` whose private mirror is closed and removed when the block ends (with the
    chunks of ``planes`` too: ``resources.store_fetch.select_chunks``)."""
    dataset, store, release = _mirror(client, row, root, part, time_indices, run_start, pinned, grid, planes)
    try:
        yield dataset, store
    finally:
        dataset.close()
        release()


def verify_forecast(repo: ValidatorRepository, client: MinerClient, row: ResponseRecord, root: Path,
                    grid: Grid, dagster_run_id: str | None = None,
                    variables: tuple[str, ...] = ALL_VARIABLES) -> VerifiedForecast:
    """Verify the miner's store and move the job to ``forecast_ready`` (idempotent); its manifest is
    frozen (``freeze``) so that every later read is checked against it. Only ``variables`` (those of
    the ERA5 variable list) must be present: a variable outside the list is never scored. The
    fingerprint of its content is recorded, and a forecast that is near-identical to another of the
    run is refused (``stages.copies``). The validator's own disk failing is a ``ValidatorFault``:
    the job is left as it was and verified again at the next poll."""
    if row.status == ResponseStatus.FAILED.value:
        raise StageRefused(f"{who(row)}: the job failed earlier and is not verified again: {row.error}")
    if is_past(row.status, ResponseStatus.FORECAST_READY.value):
        return VerifiedForecast(row, row.verification_hash_computed or "", 0, 0, "already_verified")
    if row.status != ResponseStatus.INFERENCE_RUNNING.value:
        raise StageRefused(f"{who(row)}: no completed forecast to verify yet (status {row.status})")
    try:
        run_start = repo.run_by_id(row.run_id).created_at
        plan = copies.plan_for(repo, row, grid, variables)
        with mirrored_fields(client, row, root, "metadata", [], run_start=run_start, grid=grid,
                             planes=copies.plan_chunks(plan)) as (dataset, store):
            problems = contract_problems(dataset, grid, row.gfs_init_time, variables)
            if problems:
                raise ForecastRejected(f"{who(row)}: the store breaks the data contract: " + "; ".join(problems))
            samples = copies.fingerprint_dataset(dataset, plan, row)
        freeze(repo, row, store)
        copies.record(repo, row, plan, samples)
        copies.refuse_copy(repo, row)
    except ForecastRejected as exc:
        fail_job(repo, row.id, ResponseStatus.INFERENCE_RUNNING.value, str(exc), dagster_run_id)
        raise
    except SlowStore as exc:   # verified again at the next poll, in the slow lane
        repo.update_response(row.id, ResponseStatus.INFERENCE_RUNNING.value, slow_store_at=now_utc(),
                             error=f"{who(row)}: {UNVERIFIED} in the fast lane: {exc}")
        raise
    except MinerClientError as exc:   # retried at the next poll, within the poll budget (stages.poll)
        repo.update_response(row.id, ResponseStatus.INFERENCE_RUNNING.value, error=f"{who(row)}: {UNVERIFIED}: {exc}")
        raise
    except ValidatorSideError as exc:
        raise ValidatorFault(f"{who(row)}: verification failed on the validator's side ({exc}); the job is "
                             f"not failed and is verified again at the next poll") from exc
    verified = forecast_verified(repo, row.id, store.manifest_hash, dagster_run_id)
    return VerifiedForecast(verified.job, store.manifest_hash, store.files_fetched, store.bytes_fetched, "verified")


def freeze(repo: ValidatorRepository, row: ResponseRecord, store: VerifiedStore) -> None:
    """Freeze rule (issue 10): the manifest verified inside the freeze window is recorded (hash and
    every file's digest) and pins every later read. A retried verification whose store changed
    since the first freeze is refused as changed."""
    frozen = repo.freeze_manifest(row.id, row.run_id, row.miner_hotkey, store.manifest_hash, dict(store.files or {}))
    if frozen.manifest_hash != store.manifest_hash:
        raise ForecastRejected(f"{who(row)}: {STORE_CHANGED}: manifest {store.manifest_hash} served, "
                               f"{frozen.manifest_hash} frozen")

"""The reference miner's HTTP API (GAIA_SPEC section 2).

- ``/weather-initiate-fetch``: refuses a request for another hotkey; a completed forecast of the
  same T0 is returned at once to any validator (fast path); otherwise the job is recorded under its
  deterministic ID and inference starts (a second request for the same T0 never starts it twice).
- ``/weather-poll-job-status``: the job's status; an unknown job answers ``not_found``.
- ``/weather-kerchunk-request``: store URL, verification hash and a fresh short-lived JWT.
- ``/forecasts/{path}``: the store's files, only with a valid JWT whose path scope covers the path.

Every POST speaks the Fiber transport (``gaia_dagster.core.fiber``: ``/public-encryption-key`` and
``/exchange-symmetric-key``, then signed headers and a Fernet body), checked by ``miner/guard.py``
from the headers before the body is read: 401 for a missing, stale, replayed or wrongly signed
request or another ``miner-hotkey``, 403 for a validator neither allowlisted nor staked
(``miner/access.py``), 429 past the validator's own rate limit, 400 ``No symmetric key found``.
Below every route, ``miner/limits.py`` answers an oversized body 413 before reading it and a
malformed path 400/414.

``MinerSettings.fault`` makes the miner misbehave in one named way (``gaia_dagster.miner.faults``),
for driving a validator against broken miners; None (the default) is a healthy miner.
"""

from __future__ import annotations

import asyncio
from contextlib import asynccontextmanager
import json
import secrets
import threading
import time
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterator

import jwt
import numpy as np
import xarray as xr
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response

from gaia_dagster.core.contract import valid_times
from gaia_dagster.core.job_ids import DeterministicJobID
from gaia_dagster.core.manifest import MANIFEST_FILE, verification_hash
from gaia_dagster.core.signing import keypair_from_uri
from gaia_dagster.core.states import MinerJobStatus

RECEIVED, RUNNING_INFERENCE = MinerJobStatus.RECEIVED.value, MinerJobStatus.RUNNING_INFERENCE.value
COMPLETED, FAILED, ERROR = MinerJobStatus.COMPLETED.value, MinerJobStatus.FAILED.value, MinerJobStatus.ERROR.value
FETCH_ACCEPTED, PROCESSING = MinerJobStatus.FETCH_ACCEPTED.value, MinerJobStatus.PROCESSING.value
NOT_FOUND = MinerJobStatus.NOT_FOUND.value
from gaia_dagster.core import fiber
from gaia_dagster.miner import faults, formats
from gaia_dagster.miner.files import serve_forecast_file
from gaia_dagster.miner.access import DEFAULT_BURST, DEFAULT_MIN_STAKE, DEFAULT_RATE_PER_S, AccessPolicy, Refused, TokenBuckets
from gaia_dagster.miner.guard import NO_STORE, MinerGuard, open_body, rejected
from gaia_dagster.miner.limits import DEFAULT_MAX_BODY_BYTES, RequestLimits
from gaia_dagster.miner.store import write_manifest, write_zarr_store

OFFLINE = "offline"
HANG_SECONDS = 3600.0


def miner_profiles() -> tuple[str, ...]:
    """The profiles a reference miner can play: the world's forecast profiles, ``offline`` and
    ``gaia-format`` (``good`` in a deployed Gaia miner's store format, ``miner/formats.py``)."""
    from gaia_dagster.world.forecasts import PROFILES

    return (*PROFILES, OFFLINE, formats.GAIA_FORMAT)


@dataclass
class MinerSettings:
    """One reference miner: its hotkey (derived from ``hotkey_uri``), profile, storage, JWT policy and
    access policy (``miner/access.py``: ``allowed_validators`` and/or a ``stake_table`` with
    ``min_validator_stake``, else ``dev_open_access``; a per-validator rate limit; a body limit).
    """

    hotkey_uri: str
    profile: str
    data_dir: Path
    resolution: float = 1.5
    jwt_secret: str = field(default_factory=lambda: secrets.token_hex(32))
    token_ttl_s: int = 600
    inference_delay_s: float = 0.0
    public_base_url: str = "http://127.0.0.1:8000"
    allowed_validators: tuple[str, ...] | None = None
    stake_table: Path | None = None  # JSON {validator hotkey: stake}; those staked >= min_validator_stake are served
    min_validator_stake: float = DEFAULT_MIN_STAKE
    dev_open_access: bool = False  # serve any correctly signed hotkey (development miners only)
    rate_per_s: float = DEFAULT_RATE_PER_S  # requests a second per validator hotkey (token bucket)
    rate_burst: float = DEFAULT_BURST
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES
    keypair: Any = field(default=None, repr=False, compare=False)  # a ready Keypair (a wallet's); else from the URI
    fault: str | None = None  # one injected misbehaviour (``gaia_dagster.miner.faults.FAULTS``); None = healthy
    fault_count: int | None = None  # an API fault hits only the first N requests (transient); None = every one
    fault_delay_s: float = HANG_SECONDS  # how long ``timeout``/``gone_mid_job`` hang and ``slow_drip`` drips
    fault_size_bytes: int = 80 * 1024 * 1024  # the body size of ``oversized`` (above the client's default cap)
    fault_copy_of: str | None = None  # ``copier``: the hotkey whose good forecast it re-signs as its own

    def __post_init__(self) -> None:
        """Reject an unknown profile up front rather than at the first inference."""
        self.data_dir = Path(self.data_dir)
        if self.allowed_validators is not None:
            self.allowed_validators = tuple(self.allowed_validators)
        self.public_base_url = self.public_base_url.rstrip("/")
        if self.profile not in miner_profiles():
            raise ValueError(f"miner {self.hotkey_uri}: unknown profile {self.profile!r} "
                             f"(expected one of {miner_profiles()})")
        faults.check_fault(self.fault)


@dataclass
class MinerJob:
    """A forecast job as the miner records it (one JSON file per job under ``data_dir/jobs``)."""

    job_id: str
    forecast_start_time: str
    validator_hotkey: str
    status: str = RECEIVED
    message: str = ""
    verification_hash: str | None = None
    created_at: float = field(default_factory=time.time)


def _parse_time(value: Any) -> datetime:
    """An ISO time from a request; naive means UTC."""
    moment = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    return moment.replace(tzinfo=timezone.utc) if moment.tzinfo is None else moment.astimezone(timezone.utc)


class MinerState:
    """Jobs in memory, mirrored to one JSON file per job so a restarted miner keeps its forecasts."""

    def __init__(self, settings: MinerSettings):
        self.settings = settings
        self.keypair = settings.keypair if settings.keypair is not None else keypair_from_uri(settings.hotkey_uri)
        self.hotkey = self.keypair.ss58_address
        self.forecasts_dir = settings.data_dir / "forecasts"
        self.jobs_dir = settings.data_dir / "jobs"
        self.forecasts_dir.mkdir(parents=True, exist_ok=True)
        self.jobs_dir.mkdir(parents=True, exist_ok=True)
        self.lock = threading.Lock()
        self.stopping = threading.Event()
        self.workers: list[threading.Thread] = []
        self.guard = MinerGuard(self.hotkey, AccessPolicy(
            settings.allowed_validators, settings.stake_table, settings.min_validator_stake,
            settings.dev_open_access, miner=self.hotkey), TokenBuckets(settings.rate_per_s, settings.rate_burst))
        self.fault = faults.FaultState(settings.fault, settings.fault_count, settings.fault_delay_s,
                                       settings.fault_size_bytes)
        self.jobs: dict[str, MinerJob] = {}
        for file in sorted(self.jobs_dir.glob("*.json")):
            job = self._restore(file)
            if job is not None:
                self.jobs[job.job_id] = job

    def _restore(self, file: Path) -> MinerJob | None:
        """Restart rule: a completed job with its store stays completed; an interrupted one is failed."""
        try:
            job = MinerJob(**json.loads(file.read_text()))
        except (ValueError, TypeError):
            return None
        if job.status == COMPLETED and not (self.forecasts_dir / self.store_rel(job) / "manifest.json").is_file():
            job.status, job.message = FAILED, "the forecast store is missing after a restart"
        elif job.status not in (COMPLETED, FAILED):
            job.status, job.message = FAILED, "the miner restarted during inference"
        return job

    def save(self, job: MinerJob) -> None:
        """Persist the job record (write then rename) so a restarted miner still knows its forecasts."""
        target = self.jobs_dir / f"{job.job_id}.json"
        tmp = target.with_suffix(".json.tmp")
        tmp.write_text(json.dumps(asdict(job)))
        tmp.replace(target)

    def job_for_t0(self, t0: datetime) -> MinerJob | None:
        """The job of a T0 under its deterministic ID (whatever validator asked)."""
        return self.jobs.get(DeterministicJobID.generate_weather_job_id(t0, self.hotkey))

    def find_job(self, job_id: str) -> MinerJob | None:
        """By exact ID, else by the GFS time of a readable weather key (exact timestep only)."""
        if job_id in self.jobs:
            return self.jobs[job_id]
        try:
            _, t0, miner = DeterministicJobID.parse_weather_job_key(job_id)
        except ValueError:
            return None
        return self.job_for_t0(t0) if miner == self.hotkey else None

    def store_rel(self, job: MinerJob) -> str:
        """The store's directory relative to the forecasts dir: ``{job_id}.zarr``."""
        return f"{job.job_id}.zarr"

    def token(self, job: MinerJob, rel: str | None = None) -> str:
        """A fresh HS256 JWT scoped to the job's store (claims job_id, file_path, exp)."""
        claims = {"job_id": job.job_id, "file_path": rel or self.store_rel(job),
                  "exp": int(time.time()) + self.settings.token_ttl_s}
        return jwt.encode(claims, self.settings.jwt_secret, algorithm="HS256")

    def store_answer(self, job: MinerJob) -> dict[str, Any]:
        """The store fields of a completed job: URL, verification hash and a fresh token."""
        rel = self.fault.served_store_rel(self.store_rel(job))
        claimed = job.verification_hash
        if rel != self.store_rel(job):
            claimed = verification_hash((self.forecasts_dir / rel / MANIFEST_FILE).read_bytes())
        return {"zarr_store_url": formats.store_url(self.settings.profile, self.settings.public_base_url, rel),
                "verification_hash": faults.claimed_hash(self.settings.fault, claimed),
                "access_token": self.token(job, rel)}


def forecast_steps_for(state: MinerState, job: MinerJob, profile: str | None = None) -> Iterator[xr.Dataset]:
    """The profile's 40 steps T0+6h..T0+240h, generated one at a time (each with a length-1 time dim)."""
    from gaia_dagster.world.atmosphere import SyntheticAtmosphere
    from gaia_dagster.world.forecasts import forecast_step

    fault = state.settings.fault
    atmosphere = SyntheticAtmosphere(resolution=faults.store_resolution(fault, state.settings.resolution))
    t0 = _parse_time(job.forecast_start_time)
    for valid in valid_times(t0):
        if state.stopping.is_set():
            raise InferenceStopped("the miner is shutting down")
        lead = int((valid - t0).total_seconds() // 3600)
        member = faults.forecast_member(fault, state.hotkey, state.settings.fault_copy_of)
        step = forecast_step(atmosphere, formats.content_profile(profile or state.settings.profile), t0, lead,
                             member=member)
        step = faults.corrupt_step(fault, step)
        yield step.expand_dims(time=[np.datetime64(valid.replace(tzinfo=None), "ns")])


def run_inference(state: MinerState, job: MinerJob) -> None:
    """Produce the profile's forecast as a store with a signed manifest; record the outcome.

    Status rule: received -> running_inference -> processing_output -> completed, or failed with
    the reason (the server keeps serving either way).
    """
    try:
        if state.settings.inference_delay_s and state.stopping.wait(state.settings.inference_delay_s):
            raise InferenceStopped("the miner is shutting down")
        _set(state, job, RUNNING_INFERENCE, "inference running")
        path = state.forecasts_dir / state.store_rel(job)
        formats.write_served_zarr(path, forecast_steps_for(state, job), _parse_time(job.forecast_start_time),
                                  state.settings.profile, state.settings.fault)
        _set(state, job, "processing_output", "writing the signed manifest")
        job.verification_hash = formats.write_served_manifest(path, state.keypair, state.settings.profile,
                                                              state.settings.fault)
        faults.after_manifest(state.settings.fault, path, state.settings.hotkey_uri)
        if state.settings.fault == "swap_after_freeze":
            swap = state.forecasts_dir / faults.swapped_rel(state.store_rel(job))
            write_zarr_store(swap, forecast_steps_for(state, job, faults.SWAP_PROFILE),
                             _parse_time(job.forecast_start_time))
            write_manifest(swap, state.keypair)
        _set(state, job, COMPLETED, "forecast ready")
    except Exception as exc:  # noqa: BLE001 - the job records the failure; the server keeps serving
        _set(state, job, FAILED, f"miner {state.hotkey}, job {job.job_id}: inference failed: "
                                   f"{type(exc).__name__}: {exc}")


class InferenceStopped(Exception):
    """The miner is shutting down: inference stops between steps (the job is recorded failed)."""


def start_inference(state: MinerState, job: MinerJob) -> None:
    """Run inference on a worker thread the miner keeps track of (joined on shutdown)."""
    worker = threading.Thread(target=run_inference, args=(state, job), daemon=True, name=f"inference-{job.job_id}")
    with state.lock:
        state.workers = [w for w in state.workers if w.is_alive()] + [worker]
    worker.start()


def stop_inference(state: MinerState, timeout: float = 60.0) -> None:
    """Shutdown rule: no store write may outlive the server; running inference stops between
    steps and its threads are joined before the process may exit."""
    state.stopping.set()
    for worker in list(state.workers):
        worker.join(timeout=timeout)


def _set(state: MinerState, job: MinerJob, status: str, message: str) -> None:
    """Move a job to ``status`` and persist it."""
    with state.lock:
        job.status, job.message = status, message
        state.save(job)


def _data(body: Any) -> dict[str, Any]:
    """The ``data`` object of a ``{"nonce": ..., "data": {...}}`` request body."""
    if not isinstance(body, dict) or not isinstance(body.get("data"), dict):
        raise ValueError("request body must be {\"nonce\": ..., \"data\": {...}}")
    return body["data"]



def initiate_fetch_answer(state: MinerState, data: dict[str, Any]) -> dict[str, Any]:
    """Initiate-fetch rule (GAIA_SPEC 2): refuse another hotkey; a completed T0 answers at once
    (fast path, any validator); a job in progress is answered with its ID and never started twice;
    otherwise the job is recorded as ``received`` and inference starts in a background thread.
    """
    t0 = _parse_time(data["forecast_start_time"])
    validator = str(data.get("validator_hotkey") or "")
    expected = str(data.get("expected_miner_hotkey") or "")
    if expected != state.hotkey:
        return {"status": "fetch_rejected", "job_id": None,
                "message": f"miner {state.hotkey}: the request is for hotkey {expected!r}, not this miner"}
    job_id = DeterministicJobID.generate_weather_job_id(t0, state.hotkey, validator)
    with state.lock:
        job = state.jobs.get(job_id)
        if job is not None and job.status == COMPLETED:
            return {"status": COMPLETED, "job_id": job_id, "message": "forecast already complete for this T0",
                    **state.store_answer(job)}
        if job is not None and job.status != FAILED:
            return {"status": FETCH_ACCEPTED, "job_id": job_id, "message": f"job already {job.status}"}
        job = MinerJob(job_id, t0.isoformat(), validator)
        state.jobs[job_id] = job
        state.save(job)
    start_inference(state, job)
    return {"status": FETCH_ACCEPTED, "job_id": job_id, "message": "inference started"}


def poll_answer(state: MinerState, data: dict[str, Any]) -> dict[str, Any]:
    """Poll rule: the job's status and message; an unknown job is ``not_found`` (never an error)."""
    job_id = str(data["job_id"])
    job = state.find_job(job_id)
    if job is None:
        return {"status": NOT_FOUND, "job_id": job_id, "message": f"miner {state.hotkey} has no job {job_id}"}
    return {"status": job.status, "job_id": job.job_id, "message": job.message}


def kerchunk_answer(state: MinerState, data: dict[str, Any]) -> dict[str, Any]:
    """Kerchunk rule: a completed job gives its store URL, hash and a fresh token; otherwise
    ``processing`` (still running), ``error`` (failed) or ``not_found``, without store fields."""
    job_id = str(data["job_id"])
    job = state.find_job(job_id)
    if job is None:
        return {"status": NOT_FOUND, "message": f"miner {state.hotkey} has no job {job_id}", **NO_STORE}
    if job.status == FAILED:
        return {"status": ERROR, "message": job.message, **NO_STORE}
    if job.status != COMPLETED:
        return {"status": PROCESSING, "message": f"job {job.job_id} is {job.status}", **NO_STORE}
    return {"status": COMPLETED, "message": "ok", **state.store_answer(job)}


async def _answer(request: Request, rule) -> JSONResponse:  # noqa: ANN001 - one of the *_answer rules
    """The guard on the headers first (``miner/guard.py``), then the body is read and opened, then a
    protocol rule is applied to the request's ``data``; a malformed request is a 400, never a 500."""
    state: MinerState = request.app.state.miner
    if state.fault.gone:
        return await faults.hang(state.fault.delay_s)
    try:
        key = state.guard.admit(request.headers)
        payload = open_body(key, await request.body())
    except Refused as exc:
        return rejected(state.hotkey, request, exc)
    if state.fault.api_fault_due(request.url.path):
        if state.fault.fault == "timeout":
            return await faults.hang(state.fault.delay_s)
        return faults.api_fault_response(state.fault, state.hotkey, request.url.path)
    try:
        answer = rule(state, _data(payload))
        state.fault.after_answer(answer)
        return JSONResponse(answer)
    except (ValueError, KeyError, TypeError) as exc:
        return JSONResponse({"status": ERROR, "job_id": None, "message": f"miner {state.hotkey}: bad request to "
                             f"{request.url.path}: {type(exc).__name__}: {exc}", **NO_STORE}, 400)


async def _never_answer() -> Response:
    """The ``offline`` profile: hold every request open and never answer."""
    await asyncio.sleep(HANG_SECONDS)
    return Response(status_code=503)


def create_app(settings: MinerSettings) -> FastAPI:
    """The miner's FastAPI app for one hotkey and profile (GAIA_SPEC 2 endpoints)."""
    state = MinerState(settings)

    @asynccontextmanager
    async def lifespan(_app: FastAPI):  # noqa: ANN202
        yield
        await asyncio.to_thread(stop_inference, state)

    app = FastAPI(title=f"gaia reference miner ({settings.profile})", lifespan=lifespan)
    app.state.miner = state
    app.add_middleware(RequestLimits, max_body_bytes=settings.max_body_bytes, who=f"miner {state.hotkey}")

    if settings.profile == OFFLINE:
        @app.api_route("/{path:path}", methods=["GET", "POST", "HEAD"])
        async def offline(path: str) -> Response:
            return await _never_answer()

        return app

    @app.get(fiber.PUBLIC_KEY_PATH)
    async def public_encryption_key() -> JSONResponse:
        return JSONResponse({"public_key": state.guard.keys.public_pem, "timestamp": time.time()})

    @app.post(fiber.EXCHANGE_KEY_PATH)
    async def exchange_symmetric_key(request: Request) -> JSONResponse:
        try:
            state.guard.check_headers(request.headers)
            state.guard.exchange(request.headers, await request.body())
        except Refused as exc:
            return rejected(state.hotkey, request, exc)
        return JSONResponse({"status": "Symmetric key exchanged successfully"})

    @app.post("/weather-initiate-fetch")
    async def initiate_fetch(request: Request) -> JSONResponse:
        return await _answer(request, initiate_fetch_answer)

    @app.post("/weather-poll-job-status")
    async def poll_job_status(request: Request) -> JSONResponse:
        return await _answer(request, poll_answer)

    @app.post("/weather-kerchunk-request")
    async def kerchunk_request(request: Request) -> JSONResponse:
        return await _answer(request, kerchunk_answer)

    @app.api_route("/forecasts/{path:path}", methods=["GET", "HEAD"])
    async def forecasts(path: str, request: Request) -> Response:
        if state.fault.gone:
            return await faults.hang(state.fault.delay_s)
        if state.fault.store_withheld():
            return Response(status_code=503)
        delay = state.fault.store_delay_s()
        if delay:
            await asyncio.sleep(delay)
        return serve_forecast_file(state, path, request)

    return app

"""The reference miner's HTTP API (GAIA_SPEC section 2).

- ``/weather-initiate-fetch``: refuses a request for another hotkey; a completed forecast of the
  same T0 is returned at once to any validator (fast path); otherwise the job is recorded under its
  deterministic ID and inference starts (a second request for the same T0 never starts it twice).
- ``/weather-poll-job-status``: the job's status; an unknown job answers ``not_found``.
- ``/weather-kerchunk-request``: store URL, verification hash and a fresh short-lived JWT.
- ``/forecasts/{path}``: the store's files, only with a valid JWT whose path scope covers the path.
"""

from __future__ import annotations

import asyncio
import json
import secrets
import threading
import time
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import jwt
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response

from gaia_dagster.core.job_ids import DeterministicJobID
from gaia_dagster.core.signing import keypair_from_uri
from gaia_dagster.miner.store import write_manifest, write_store

OFFLINE = "offline"
HANG_SECONDS = 3600.0


@dataclass
class MinerSettings:
    hotkey_uri: str
    profile: str
    data_dir: Path
    resolution: float = 1.5
    jwt_secret: str = field(default_factory=lambda: secrets.token_hex(32))
    token_ttl_s: int = 600
    inference_delay_s: float = 0.0
    public_base_url: str = "http://127.0.0.1:8000"


@dataclass
class MinerJob:
    job_id: str
    forecast_start_time: str
    validator_hotkey: str
    status: str = "received"
    message: str = ""
    verification_hash: str | None = None
    created_at: float = field(default_factory=time.time)


def _parse_time(value: Any) -> datetime:
    moment = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    return moment.replace(tzinfo=timezone.utc) if moment.tzinfo is None else moment.astimezone(timezone.utc)


class MinerState:
    """Jobs in memory, mirrored to one JSON file per job so a restarted miner keeps its forecasts."""

    def __init__(self, settings: MinerSettings):
        self.settings = settings
        self.keypair = keypair_from_uri(settings.hotkey_uri)
        self.hotkey = self.keypair.ss58_address
        self.forecasts_dir = settings.data_dir / "forecasts"
        self.jobs_dir = settings.data_dir / "jobs"
        self.forecasts_dir.mkdir(parents=True, exist_ok=True)
        self.jobs_dir.mkdir(parents=True, exist_ok=True)
        self.lock = threading.Lock()
        self.jobs: dict[str, MinerJob] = {}
        for file in self.jobs_dir.glob("*.json"):
            job = MinerJob(**json.loads(file.read_text()))
            if job.status != "completed":
                job.status, job.message = "failed", "the miner restarted during inference"
            self.jobs[job.job_id] = job

    def save(self, job: MinerJob) -> None:
        (self.jobs_dir / f"{job.job_id}.json").write_text(json.dumps(asdict(job)))

    def job_for_t0(self, t0: datetime) -> MinerJob | None:
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
        return f"{job.job_id}.zarr"

    def token(self, job: MinerJob) -> str:
        claims = {"job_id": job.job_id, "file_path": self.store_rel(job),
                  "exp": int(time.time()) + self.settings.token_ttl_s}
        return jwt.encode(claims, self.settings.jwt_secret, algorithm="HS256")

    def store_answer(self, job: MinerJob) -> dict[str, Any]:
        return {"zarr_store_url": f"{self.settings.public_base_url}/forecasts/{self.store_rel(job)}",
                "verification_hash": job.verification_hash, "access_token": self.token(job)}


def run_inference(state: MinerState, job: MinerJob) -> None:
    """Produce the profile's forecast as a store with a signed manifest; record the outcome."""
    from gaia_dagster.world.atmosphere import SyntheticAtmosphere
    from gaia_dagster.world.forecasts import forecast_steps

    try:
        if state.settings.inference_delay_s:
            time.sleep(state.settings.inference_delay_s)
        _set(state, job, "running_inference", "inference running")
        atmosphere = SyntheticAtmosphere(resolution=state.settings.resolution)
        t0 = _parse_time(job.forecast_start_time)
        path = state.forecasts_dir / state.store_rel(job)
        write_store(path, forecast_steps(atmosphere, state.settings.profile, t0, state.hotkey), t0.isoformat())
        _set(state, job, "processing_output", "writing the manifest")
        job.verification_hash = write_manifest(path, state.keypair)
        _set(state, job, "completed", "forecast ready")
    except Exception as exc:  # noqa: BLE001 - the job records the failure; the server keeps serving
        _set(state, job, "failed", f"inference failed: {type(exc).__name__}: {exc}")


def _set(state: MinerState, job: MinerJob, status: str, message: str) -> None:
    with state.lock:
        job.status, job.message = status, message
        state.save(job)


def _data(body: Any) -> dict[str, Any]:
    if not isinstance(body, dict) or not isinstance(body.get("data"), dict):
        raise ValueError("request body must be {\"nonce\": ..., \"data\": {...}}")
    return body["data"]


def create_app(settings: MinerSettings) -> FastAPI:
    """The miner's FastAPI app for one hotkey and profile."""
    state = MinerState(settings)
    app = FastAPI(title=f"gaia reference miner ({settings.profile})")
    app.state.miner = state

    if settings.profile == OFFLINE:
        @app.api_route("/{path:path}", methods=["GET", "POST", "HEAD"])
        async def never_answer(path: str) -> Response:
            await asyncio.sleep(HANG_SECONDS)
            return Response(status_code=503)

        return app

    @app.post("/weather-initiate-fetch")
    async def initiate_fetch(request: Request) -> JSONResponse:
        try:
            data = _data(await request.json())
            t0 = _parse_time(data["forecast_start_time"])
            validator = str(data.get("validator_hotkey") or "")
            expected = str(data.get("expected_miner_hotkey") or "")
        except (ValueError, KeyError) as exc:
            return JSONResponse({"status": "error", "job_id": None, "message": f"bad request: {exc}"}, 400)
        if expected != state.hotkey:
            return JSONResponse({"status": "fetch_rejected", "job_id": None,
                                 "message": f"this miner is {state.hotkey}, not {expected}"})
        job_id = DeterministicJobID.generate_weather_job_id(t0, state.hotkey, validator)
        with state.lock:
            job = state.jobs.get(job_id)
            if job is not None and job.status == "completed":
                return JSONResponse({"status": "completed", "job_id": job_id,
                                     "message": "forecast already complete for this T0", **state.store_answer(job)})
            if job is not None and job.status != "failed":
                return JSONResponse({"status": "fetch_accepted", "job_id": job_id,
                                     "message": f"job already {job.status}"})
            job = MinerJob(job_id, t0.isoformat(), validator)
            state.jobs[job_id] = job
            state.save(job)
        threading.Thread(target=run_inference, args=(state, job), daemon=True, name=f"inference-{job_id}").start()
        return JSONResponse({"status": "fetch_accepted", "job_id": job_id, "message": "inference started"})

    @app.post("/weather-poll-job-status")
    async def poll_job_status(request: Request) -> JSONResponse:
        try:
            job_id = str(_data(await request.json())["job_id"])
        except (ValueError, KeyError) as exc:
            return JSONResponse({"status": "error", "job_id": None, "message": f"bad request: {exc}"}, 400)
        job = state.find_job(job_id)
        if job is None:
            return JSONResponse({"status": "not_found", "job_id": job_id, "message": "no such job"})
        return JSONResponse({"status": job.status, "job_id": job.job_id, "message": job.message})

    @app.post("/weather-kerchunk-request")
    async def kerchunk_request(request: Request) -> JSONResponse:
        try:
            job_id = str(_data(await request.json())["job_id"])
        except (ValueError, KeyError) as exc:
            return JSONResponse({"status": "error", "message": f"bad request: {exc}"}, 400)
        job = state.find_job(job_id)
        if job is None:
            return JSONResponse({"status": "not_found", "message": f"no job {job_id}", "zarr_store_url": None,
                                 "verification_hash": None, "access_token": None})
        if job.status != "completed":
            status = "error" if job.status == "failed" else "processing"
            return JSONResponse({"status": status, "message": job.message, "zarr_store_url": None,
                                 "verification_hash": None, "access_token": None})
        return JSONResponse({"status": "completed", "message": "ok", **state.store_answer(job)})

    @app.api_route("/forecasts/{path:path}", methods=["GET", "HEAD"])
    async def forecasts(path: str, request: Request) -> Response:
        return serve_forecast_file(state, path, request)

    return app


def _token_of(request: Request) -> str | None:
    header = request.headers.get("authorization", "")
    if header.lower().startswith("bearer "):
        return header[7:].strip()
    return request.query_params.get("token")


def _in_scope(scope: str, path: str) -> bool:
    """The token's path must equal the requested path or be a whole-segment prefix of it."""
    scope = scope.strip("/")
    return path == scope or path.startswith(scope + "/")


def serve_forecast_file(state: MinerState, path: str, request: Request) -> Response:
    """A store file, only with a valid token whose scope covers it, never outside the store dir."""
    token = _token_of(request)
    if not token:
        return JSONResponse({"detail": "an access token is required"}, 401)
    try:
        claims = jwt.decode(token, state.settings.jwt_secret, algorithms=["HS256"], options={"require": ["exp"]})
    except jwt.PyJWTError as exc:
        return JSONResponse({"detail": f"invalid access token: {exc}"}, 401)
    if ".." in path.split("/") or not _in_scope(str(claims.get("file_path", "")), path):
        return JSONResponse({"detail": "the token does not cover this path"}, 403)
    root = state.forecasts_dir.resolve()
    target = (root / path).resolve()
    if root not in target.parents or not target.is_file():
        return JSONResponse({"detail": "not found"}, 404)
    if request.method == "HEAD":
        return Response(status_code=200, headers={"content-length": str(target.stat().st_size)})
    return Response(target.read_bytes(), media_type="application/octet-stream")

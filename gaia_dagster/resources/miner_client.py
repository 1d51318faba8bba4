"""The validator's HTTP client for the Gaia miner API (GAIA_SPEC section 2).

Every network call to a miner lives here. Transport and protocol failures raise
``MinerClientError`` naming the miner, the URL and what went wrong (timeout, refused connection,
HTTP status, malformed JSON, wrong schema, oversized answer). Forecast files are verified against
the signed manifest as they are read; a verification failure raises ``ManifestError`` naming the
miner, the job and the offending file.
"""

from __future__ import annotations

import asyncio
import json
import ssl
import time
from dataclasses import dataclass
from functools import lru_cache
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence

import httpx

from gaia_dagster.core.answers import AnswerRejected, parse_json_object
from gaia_dagster.core.contract import PREVIOUS_STEP
from gaia_dagster.core.manifest import PinnedManifest
from gaia_dagster.core.fiber import NO_KEY_MESSAGE
from gaia_dagster.core.urls import same_origin  # noqa: F401 - the SSRF guard, where callers look for it
from gaia_dagster.resources.miner_errors import MinerClientError, SlowStore  # noqa: F401 - imported from here
from gaia_dagster.resources.fiber_session import FiberHandshakeError, FiberSession, HandshakeStep, run_steps

if TYPE_CHECKING:
    from gaia_dagster.resources.store_fetch import VerifiedStore
    from gaia_dagster.resources.store_reader import RateFloor

FREEZE_WINDOW = timedelta(hours=2)


MAX_IN_FLIGHT_PER_MINER = 2
MAX_ANSWER_BYTES = 1024 * 1024
"""Largest JSON answer (initiate-fetch, poll, kerchunk, handshake) read from a miner; real ones are < 1 KB."""
ANSWER_DEADLINE_S = 5.0
"""Default time by which one JSON call (handshake included) must have its whole answer."""
MAX_FIELD_CHARS = 4096
"""Longest string field (status, job id, store URL, hash, token) accepted in a miner's answer."""




@dataclass(frozen=True)
class InitiateFetchResult:
    """Answer of ``/weather-initiate-fetch`` (store fields only on the ``completed`` fast path)."""

    status: str
    job_id: str | None
    message: str
    zarr_store_url: str | None = None
    verification_hash: str | None = None
    access_token: str | None = None


@dataclass(frozen=True)
class PollResult:
    """Answer of ``/weather-poll-job-status``."""

    status: str
    job_id: str | None
    message: str


@dataclass(frozen=True)
class KerchunkResult:
    """Answer of ``/weather-kerchunk-request``: where the store is, its hash and a fresh token."""

    status: str
    message: str
    zarr_store_url: str | None
    verification_hash: str | None
    access_token: str | None


def _iso(moment: datetime) -> str:
    """Times on the wire: ISO 8601."""
    return moment.isoformat()


def _string(answer: dict[str, Any], name: str, who: str) -> str:
    """Schema rule: a required field must be a string (of at most ``MAX_FIELD_CHARS``)."""
    value = answer.get(name)
    if not isinstance(value, str):
        raise MinerClientError(f"{who}: wrong schema, the answer lacks a string {name!r}: {json.dumps(answer)[:200]}")
    return _bounded_field(value, name, who)


def _optional_string(answer: dict[str, Any], name: str, who: str) -> str | None:
    """Schema rule: an optional field is a string (of at most ``MAX_FIELD_CHARS``) or null."""
    value = answer.get(name)
    if value is not None and not isinstance(value, str):
        raise MinerClientError(f"{who}: wrong schema, {name!r} is a {type(value).__name__}, not a string")
    return value if value is None else _bounded_field(value, name, who)


def _bounded_field(value: str, name: str, who: str) -> str:
    if len(value) > MAX_FIELD_CHARS:
        raise MinerClientError(f"{who}: wrong schema, {name!r} is {len(value)} characters long "
                               f"(at most {MAX_FIELD_CHARS})")
    return value


def _message(answer: dict[str, Any]) -> str:
    """The free-text ``message`` of an answer (cut when stored: ``core.answers.stored_text``)."""
    value = answer.get("message")
    return value[: MAX_FIELD_CHARS] if isinstance(value, str) else str(value or "")[: MAX_FIELD_CHARS]


def _poll_result(answer: dict[str, Any], who: str) -> PollResult:
    """Read a poll answer ``{status, job_id, message}``."""
    return PollResult(_string(answer, "status", who), _optional_string(answer, "job_id", who), _message(answer))


@lru_cache(maxsize=1)
def tls_context() -> ssl.SSLContext:
    """The TLS settings of every miner connection, built once per process (loading the CA bundle
    costs ~30 ms of CPU, which a client per request would pay every time)."""
    return ssl.create_default_context()


def _transport_error(who: str, exc: httpx.HTTPError) -> MinerClientError:
    """Name what failed: a timeout, a refused connection or another transport error."""
    if isinstance(exc, httpx.TimeoutException):
        return MinerClientError(f"{who}: timeout ({type(exc).__name__})")
    if isinstance(exc, httpx.ConnectError):
        return MinerClientError(f"{who}: connection refused or unreachable ({exc})")
    return MinerClientError(f"{who}: {type(exc).__name__}: {exc}")


IDENTITY = {"accept-encoding": "identity"}


def _refuse_compressed(response: httpx.Response, who: str) -> None:
    """Size rule: a JSON answer comes uncompressed (we ask for identity), so that its byte cap is
    the cap of what it expands to (a 50 KB gzip answer can expand to 50 MB per read)."""
    encoding = response.headers.get("content-encoding", "identity").strip().lower()
    if encoding not in ("", "identity"):
        raise MinerClientError(f"{who}: compressed answer refused (content-encoding {encoding[:40]!r}; "
                               f"identity was asked for)")


def answer_failure(who: str, exc: BaseException) -> MinerClientError:
    """Isolation rule: whatever went wrong while handling one miner's answer (RecursionError,
    MemoryError, UnicodeError, OSError, a transport or handshake error...) is that miner's failure,
    named, never the caller's."""
    if isinstance(exc, MinerClientError):
        return exc
    if isinstance(exc, httpx.HTTPError):
        return _transport_error(who, exc)
    if isinstance(exc, FiberHandshakeError):
        return MinerClientError(f"{who}: Fiber handshake failed: {exc}")
    return MinerClientError(f"{who}: {type(exc).__name__} while handling the answer: {str(exc)[:300]}")


class MinerClient:
    """Synchronous calls to one miner at a time, plus a concurrent poll of many jobs.

    ``connect_timeout``/``read_timeout`` bound every request (``read_timeout`` each socket read),
    ``total_timeout`` the whole of one request including its body (a miner that trickles its answer
    a byte at a time never trips a per-read timeout), ``max_response_bytes`` every store file,
    ``freeze_window`` how late after the run start a manifest may arrive.

    JSON calls (initiate-fetch, poll, kerchunk, and the Fiber handshake before them) are bounded
    tighter: each must have its whole answer within ``answer_deadline`` seconds (also capped by
    ``total_timeout``), of at most ``max_answer_bytes``, nested at most ``core.answers.MAX_ANSWER_DEPTH``.
    A poll tick of N jobs therefore lasts at most about ceil(N / concurrency) x ``answer_deadline``
    whatever the miners do.

    ``fiber`` (a ``FiberSession``) is the transport: Fiber, what real Gaia miners and the reference
    miner speak, and the default of ``MinerAccess.client()``. Without it requests go as plain JSON
    (only a test stand-in answers those; a Fiber miner refuses them 401).
    """

    def __init__(self, connect_timeout: float = 5.0, read_timeout: float = 30.0,
                 max_response_bytes: int = 64 * 1024 * 1024, fetch_workers: int = MAX_IN_FLIGHT_PER_MINER,
                 freeze_window: timedelta = FREEZE_WINDOW, total_timeout: float = 300.0, fiber: "FiberSession | None" = None,
                 max_answer_bytes: int = MAX_ANSWER_BYTES, answer_deadline: float = ANSWER_DEADLINE_S,
                 store_floor: "RateFloor | None" = None):
        self.max_answer_bytes = max_answer_bytes
        self.store_floor = store_floor   # the fast lane's floor of a store read (None: no fast lane)
        self.answer_deadline = min(float(answer_deadline), float(total_timeout))
        self.fiber = fiber
        self.timeout = httpx.Timeout(read_timeout, connect=connect_timeout)
        self.total_timeout = float(total_timeout)
        self.max_response_bytes = max_response_bytes
        self.fetch_workers = max(1, fetch_workers)
        self.freeze_window = freeze_window

    # -- JSON endpoints -------------------------------------------------------------------------
    def _decode(self, status_code: int, body: bytes, who: str) -> dict[str, Any]:
        """HTTP 200 with a JSON object within the answer limits (``core.answers``); anything else is named."""
        if status_code != 200:
            raise MinerClientError(f"{who}: HTTP {status_code}: {body[:200]!r}")
        try:
            return parse_json_object(body)
        except AnswerRejected as exc:
            raise MinerClientError(f"{who}: {exc}") from None

    def _deadline(self) -> float:
        """The monotonic time by which a request started now must have its whole answer."""
        return time.monotonic() + self.total_timeout

    def _answer_deadline(self) -> float:
        """The monotonic time by which a JSON call started now (handshake included) must be answered."""
        return time.monotonic() + self.answer_deadline

    def _too_slow(self, who: str, seconds: float | None = None) -> MinerClientError:
        seconds = self.total_timeout if seconds is None else seconds
        return MinerClientError(f"{who}: timeout, the answer was not complete within the {seconds:g} s "
                                f"total time cap (slow drip or stalled miner)")

    def _timeout_until(self, deadline: float) -> httpx.Timeout:
        """Per-request timeouts no longer than what is left before ``deadline`` (a stalled miner is cut there)."""
        left = max(0.001, deadline - time.monotonic())
        return httpx.Timeout(min(self.timeout.read or left, left), connect=min(self.timeout.connect or left, left))

    def _read_capped(self, response: httpx.Response, who: str, deadline: float | None = None,
                     cap: int | None = None) -> bytes:
        """The response body, refusing more than ``cap`` or past ``deadline``: a store file's
        (``max_response_bytes``, ``total_timeout``) by default, a JSON answer's when ``cap`` is given."""
        deadline = self._deadline() if deadline is None else deadline
        seconds = self.total_timeout if cap is None else self.answer_deadline
        cap = self.max_response_bytes if cap is None else cap
        declared = response.headers.get("content-length")
        if declared and declared.isdigit() and int(declared) > cap:
            raise MinerClientError(f"{who}: answer of {declared} bytes exceeds the {cap}-byte cap")
        chunks, size = [], 0
        for chunk in response.iter_bytes():
            size += len(chunk)
            if size > cap:
                raise MinerClientError(f"{who}: answer exceeds the {cap}-byte cap")
            if time.monotonic() > deadline:
                raise self._too_slow(who, seconds)
            chunks.append(chunk)
        return b"".join(chunks)

    def _send(self, client: httpx.Client, step: HandshakeStep, who: str, deadline: float) -> tuple[int, bytes]:
        """One JSON call: (HTTP status, body) uncompressed, within the answer's size cap and ``deadline``."""
        with client.stream(step.method, step.url, content=step.body, headers={**step.headers, **IDENTITY},
                           timeout=self._timeout_until(deadline)) as response:
            _refuse_compressed(response, who)
            return response.status_code, self._read_capped(response, who, deadline, self.max_answer_bytes)

    def _request(self, miner_hotkey: str, data: dict) -> tuple[bytes, dict[str, str]]:
        """Without Fiber: the plain JSON bytes of ``{"nonce": null, "data": data}`` and their content type."""
        body = json.dumps({"nonce": None, "data": data}, separators=(",", ":")).encode("utf-8")
        return body, {"content-type": "application/json"}

    def _fiber_request(self, client: httpx.Client, base_url: str, miner_hotkey: str, data: dict,
                       who: str, deadline: float) -> tuple[bytes, dict[str, str]]:
        """The Fiber body and headers of one POST (handshake first, within ``deadline``, when no key is cached)."""
        found = self.fiber.cached_key(base_url, miner_hotkey) or run_steps(
            self.fiber.handshake_steps(base_url, miner_hotkey), lambda step: self._send(client, step, who, deadline))
        return self.fiber.request(*found, miner_hotkey, data)

    def _lost_key(self, attempt: int, status: int, body: bytes) -> bool:
        """Fiber rule: a first 400 ``No symmetric key found`` (the miner restarted) means handshake again."""
        return self.fiber is not None and attempt == 0 and status == 400 and NO_KEY_MESSAGE.encode() in body

    def _post(self, client: httpx.Client, base_url: str, path: str, miner_hotkey: str, data: dict,
              job_id: str | None = None) -> dict[str, Any]:
        """POST ``{"nonce": ..., "data": data}`` (Fiber-encrypted when a Fiber session is set, else
        plain) and decode the JSON answer, within the answer limits. Under
        Fiber, a 400 ``No symmetric key found`` (the miner restarted) redoes the handshake once.
        Any error while handling the answer is a ``MinerClientError`` naming the miner."""
        url = base_url.rstrip("/") + path
        who = f"miner {miner_hotkey} at {url}" + (f", job {job_id}" if job_id else "")
        deadline = self._answer_deadline()
        try:
            for attempt in (0, 1):
                if self.fiber is not None:
                    body, headers = self._fiber_request(client, base_url, miner_hotkey, data, who, deadline)
                else:
                    body, headers = self._request(miner_hotkey, data)
                status, answer = self._send(client, HandshakeStep("POST", url, body, headers), who, deadline)
                if not self._lost_key(attempt, status, answer):
                    break
                self.fiber.forget(base_url, miner_hotkey)
            return self._decode(status, answer, who)
        except Exception as exc:  # noqa: BLE001 - isolation rule: see answer_failure
            raise answer_failure(who, exc) from exc

    def _verify(self, base_url: str | None) -> Any:
        """TLS verification for a miner (off for one whose self-signed certificate is accepted)."""
        if self.fiber is None or base_url is None:
            return tls_context()
        return self.fiber.verify_for(base_url, tls_context())

    def _client(self, base_url: str | None = None) -> httpx.Client:
        """A client that never follows redirects (a redirect could leave the miner's endpoint)."""
        return httpx.Client(timeout=self.timeout, follow_redirects=False, verify=self._verify(base_url))

    def initiate_fetch(self, base_url: str, miner_hotkey: str, validator_hotkey: str,
                       t0: datetime) -> InitiateFetchResult:
        """Ask the miner to forecast from T0 (inputs T0 and T0-6h)."""
        data = {"forecast_start_time": _iso(t0), "previous_step_time": _iso(t0 - PREVIOUS_STEP),
                "validator_hotkey": validator_hotkey, "expected_miner_hotkey": miner_hotkey}
        with self._client(base_url) as client:
            answer = self._post(client, base_url, "/weather-initiate-fetch", miner_hotkey, data)
        who = f"miner {miner_hotkey} at {base_url}/weather-initiate-fetch"
        return InitiateFetchResult(
            status=_string(answer, "status", who), job_id=_optional_string(answer, "job_id", who),
            message=_message(answer),
            zarr_store_url=_optional_string(answer, "zarr_store_url", who),
            verification_hash=_optional_string(answer, "verification_hash", who),
            access_token=_optional_string(answer, "access_token", who))

    def poll_job(self, base_url: str, miner_hotkey: str, job_id: str) -> PollResult:
        """The job's status as the miner reports it."""
        with self._client(base_url) as client:
            answer = self._post(client, base_url, "/weather-poll-job-status", miner_hotkey, {"job_id": job_id}, job_id)
        return _poll_result(answer, f"miner {miner_hotkey} at {base_url}, job {job_id}")

    def kerchunk(self, base_url: str, miner_hotkey: str, job_id: str) -> KerchunkResult:
        """Store URL, manifest hash and a fresh access token of a completed job."""
        with self._client(base_url) as client:
            answer = self._post(client, base_url, "/weather-kerchunk-request", miner_hotkey, {"job_id": job_id}, job_id)
        who = f"miner {miner_hotkey} at {base_url}, job {job_id}"
        return KerchunkResult(_string(answer, "status", who), _message(answer),
                              _optional_string(answer, "zarr_store_url", who),
                              _optional_string(answer, "verification_hash", who),
                              _optional_string(answer, "access_token", who))

    # -- many polls at once ---------------------------------------------------------------------
    async def apoll_many(self, jobs: Sequence[tuple[str, str, str]],
                         concurrency: int = 32) -> list[PollResult | MinerClientError]:
        """Poll (base_url, miner_hotkey, job_id) jobs, at most ``concurrency`` at once and at most
        ``MAX_IN_FLIGHT_PER_MINER`` to any one miner (fair-job-distribution: bounded work per worker).

        Always one result per job, in order: a slow, broken or hostile miner never fails the others
        nor the tick; its error (naming it) is returned in its place. Each poll, handshake included,
        has ``answer_deadline`` seconds from when it starts.
        """
        semaphore = asyncio.Semaphore(max(1, concurrency))
        per_miner: dict[str, asyncio.Semaphore] = {}
        limits = httpx.Limits(max_connections=max(1, concurrency), max_keepalive_connections=max(1, concurrency))
        async with httpx.AsyncClient(timeout=self.timeout, follow_redirects=False, verify=tls_context(),
                                     limits=limits) as client, \
                httpx.AsyncClient(timeout=self.timeout, follow_redirects=False, verify=False, limits=limits) as self_signed:
            async def one(base_url: str, miner_hotkey: str, job_id: str) -> PollResult | MinerClientError:
                endpoint = per_miner.setdefault(base_url.rstrip("/"), asyncio.Semaphore(MAX_IN_FLIGHT_PER_MINER))
                chosen = self_signed if self._verify(base_url) is False else client
                async with endpoint, semaphore:
                    return await self._apoll(chosen, base_url, miner_hotkey, job_id)

            results = await asyncio.gather(*(one(*job) for job in jobs), return_exceptions=True)
        return [answer_failure(f"miner {job[1]} at {job[0]}, job {job[2]}", r) if isinstance(r, BaseException) else r
                for job, r in zip(jobs, results)]

    async def _asend(self, client: httpx.AsyncClient, step: HandshakeStep, who: str) -> tuple[int, bytes]:
        """One asynchronous JSON call: (HTTP status, body) within the answer's size cap (the caller
        bounds its time)."""
        async with client.stream(step.method, step.url, content=step.body,
                                 headers={**step.headers, **IDENTITY}) as response:
            _refuse_compressed(response, who)
            declared = response.headers.get("content-length")
            if declared and declared.isdigit() and int(declared) > self.max_answer_bytes:
                raise MinerClientError(f"{who}: answer of {declared} bytes exceeds the {self.max_answer_bytes}-byte cap")
            received = bytearray()
            async for chunk in response.aiter_bytes():
                received.extend(chunk)
                if len(received) > self.max_answer_bytes:
                    raise MinerClientError(f"{who}: answer exceeds the {self.max_answer_bytes}-byte cap")
            return response.status_code, bytes(received)

    async def _afiber_request(self, client: httpx.AsyncClient, base_url: str, miner_hotkey: str, data: dict,
                              who: str) -> tuple[bytes, dict[str, str]]:
        """``_fiber_request`` without threads: the handshake's steps sent on the event loop."""
        found = self.fiber.cached_key(base_url, miner_hotkey)
        if found is None:
            steps, reply = self.fiber.handshake_steps(base_url, miner_hotkey), None
            try:
                while True:
                    reply = await self._asend(client, steps.send(reply), who)
            except StopIteration as done:
                found = done.value
        return self.fiber.request(*found, miner_hotkey, data)

    async def _apoll_answer(self, client: httpx.AsyncClient, base_url: str, miner_hotkey: str, job_id: str,
                            who: str) -> PollResult:
        """One poll, redoing the Fiber handshake once when the miner lost our key."""
        url = base_url.rstrip("/") + "/weather-poll-job-status"
        for attempt in (0, 1):
            if self.fiber is not None:
                body, headers = await self._afiber_request(client, base_url, miner_hotkey, {"job_id": job_id}, who)
            else:
                body, headers = self._request(miner_hotkey, {"job_id": job_id})
            status, answer = await self._asend(client, HandshakeStep("POST", url, body, headers), who)
            if not self._lost_key(attempt, status, answer):
                break
            self.fiber.forget(base_url, miner_hotkey)
        return _poll_result(self._decode(status, answer, who), who)

    async def _apoll(self, client: httpx.AsyncClient, base_url: str, miner_hotkey: str,
                     job_id: str) -> PollResult | MinerClientError:
        """One asynchronous poll cut at ``answer_deadline``; errors are returned (named), not raised."""
        who = f"miner {miner_hotkey} at {base_url.rstrip('/')}/weather-poll-job-status, job {job_id}"
        try:
            return await asyncio.wait_for(self._apoll_answer(client, base_url, miner_hotkey, job_id, who),
                                          self.answer_deadline)
        except asyncio.TimeoutError:
            return self._too_slow(who, self.answer_deadline)
        except Exception as exc:  # noqa: BLE001 - isolation rule: see answer_failure
            return answer_failure(who, exc)

    def poll_many(self, jobs: Sequence[tuple[str, str, str]],
                  concurrency: int = 32) -> list[PollResult | MinerClientError]:
        """Synchronous wrapper of ``apoll_many`` (for callers outside an event loop)."""
        if not jobs:
            return []
        return asyncio.run(self.apoll_many(jobs, concurrency))

    # -- the forecast store ---------------------------------------------------------------------
    def fetch_verified_store(self, base_url: str, miner_hotkey: str, job_id: str, dest: Path,
                             time_indices: Sequence[int] | None = None,
                             run_start: datetime | None = None,
                             pinned: PinnedManifest | None = None) -> "VerifiedStore":
        """Mirror a completed forecast store under ``dest``, verified against its signed manifest
        (``resources/store_fetch.py`` ``fetch_verified_store``)."""
        from gaia_dagster.resources.store_fetch import fetch_verified_store
        return fetch_verified_store(self, base_url, miner_hotkey, job_id, dest, time_indices, run_start, pinned)

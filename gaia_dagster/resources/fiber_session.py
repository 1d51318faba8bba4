"""The validator's side of the Fiber transport (``gaia_dagster.core.fiber``): handshake, key cache,
encrypted requests. Network calls only; the rules live in core.

A miner's symmetric key is cached at most ``VALIDATOR_KEY_TTL_S`` (2 h); when the miner answers
400 ``No symmetric key found`` (it restarted, or expired the key) the handshake is redone once.
Handshake answers are capped: each at most ``MAX_HANDSHAKE_ANSWER_BYTES``, uncompressed, and the
whole handshake within ``HANDSHAKE_DEADLINE_S`` however the miner drips or stalls (``MinerClient``
drives the same steps within its own answer limits).
``insecure_tls`` lists miner base URLs whose self-signed certificates are accepted (as deployed).
"""

from __future__ import annotations

import json
import secrets
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Generator, Iterable

import httpx
from bittensor_wallet import Keypair
from cryptography.exceptions import UnsupportedAlgorithm

from gaia_dagster.core import fiber
from gaia_dagster.core.answers import parse_json_object


MAX_HANDSHAKE_ANSWER_BYTES = 64 * 1024
"""Largest handshake answer read (a public-key answer is ~500 bytes, an exchange answer ~50)."""
HANDSHAKE_DEADLINE_S = 10.0
"""Time by which the whole handshake (both calls, every byte of both answers) must be done."""


class FiberHandshakeError(Exception):
    """The key exchange with a miner failed (named with the miner and the step)."""


@dataclass(frozen=True)
class HandshakeStep:
    """One request of the handshake: what to send; the driver answers with (status, body bytes)."""

    method: str
    url: str
    body: bytes | None = None
    headers: dict[str, str] = field(default_factory=dict)


def run_steps(steps: Generator[HandshakeStep, tuple[int, bytes], Any], send: Callable[[HandshakeStep], tuple[int, bytes]]) -> Any:
    """Drive a handshake generator with a synchronous ``send``; its return value."""
    reply = None
    try:
        while True:
            reply = send(steps.send(reply))
    except StopIteration as done:
        return done.value


class FiberSession:
    """Symmetric keys per (miner URL, miner hotkey), drawn and exchanged on first use."""

    def __init__(self, keypair: Keypair, key_ttl_s: float = fiber.VALIDATOR_KEY_TTL_S,
                 insecure_tls: Iterable[str] = ()):
        self.keypair = keypair
        self.key_ttl_s = key_ttl_s
        self.insecure_tls = {url.rstrip("/") for url in insecure_tls}
        self._keys: dict[tuple[str, str], tuple[str, bytes, float]] = {}
        self._lock = threading.Lock()

    @property
    def validator_ss58(self) -> str:
        return self.keypair.ss58_address

    def verify_for(self, base_url: str, default: Any) -> Any:
        """TLS verification for a miner: off for a miner listed in ``insecure_tls``."""
        return False if base_url.rstrip("/") in self.insecure_tls else default

    def cached_key(self, base_url: str, miner_hotkey: str) -> tuple[str, bytes] | None:
        with self._lock:
            found = self._keys.get((base_url.rstrip("/"), miner_hotkey))
        if found is None or found[2] <= time.monotonic():
            return None
        return found[0], found[1]

    def forget(self, base_url: str, miner_hotkey: str) -> None:
        with self._lock:
            self._keys.pop((base_url.rstrip("/"), miner_hotkey), None)

    def handshake_steps(self, base_url: str, miner_hotkey: str) -> Generator[HandshakeStep, tuple[int, bytes],
                                                                              tuple[str, bytes]]:
        """The handshake without I/O: ``GET /public-encryption-key``, then ``POST /exchange-symmetric-key``
        with a fresh key. Yields each request, is sent back (HTTP status, body), returns (key id, key).
        The caller does the I/O (``handshake`` plainly; the miner client within an answer's limits)."""
        base = base_url.rstrip("/")
        who = f"miner {miner_hotkey} at {base}"
        status, body = yield HandshakeStep("GET", base + fiber.PUBLIC_KEY_PATH)
        if len(body) > MAX_HANDSHAKE_ANSWER_BYTES:
            raise FiberHandshakeError(f"{who}: {fiber.PUBLIC_KEY_PATH}: answer over {MAX_HANDSHAKE_ANSWER_BYTES} bytes")
        if status != 200:
            raise FiberHandshakeError(f"{who}: {fiber.PUBLIC_KEY_PATH}: HTTP {status}")
        try:
            public_pem = str(parse_json_object(body)["public_key"])
            key, key_uuid = secrets.token_bytes(fiber.SYMMETRIC_KEY_BYTES), fiber.new_key_uuid()
            exchange = {"encrypted_symmetric_key": fiber.encrypt_symmetric_key(public_pem, key)}
        except (ValueError, KeyError, TypeError, UnsupportedAlgorithm) as exc:
            raise FiberHandshakeError(f"{who}: bad public key answer: {type(exc).__name__}: {exc}") from exc
        headers = fiber.request_headers(self.keypair, miner_hotkey, key_uuid)
        headers["content-type"] = "application/json"
        status, body = yield HandshakeStep("POST", base + fiber.EXCHANGE_KEY_PATH, json.dumps(exchange).encode(),
                                           headers)
        if status != 200:
            raise FiberHandshakeError(f"{who}: {fiber.EXCHANGE_KEY_PATH}: HTTP {status}: {body[:200]!r}")
        with self._lock:
            self._keys[(base, miner_hotkey)] = (key_uuid, key, time.monotonic() + self.key_ttl_s)
        return key_uuid, key

    def handshake(self, client: httpx.Client, base_url: str, miner_hotkey: str,
                  deadline_s: float = HANDSHAKE_DEADLINE_S) -> tuple[str, bytes]:
        """``handshake_steps`` over a synchronous client, both calls within ``deadline_s`` in all and
        each answer within ``MAX_HANDSHAKE_ANSWER_BYTES`` (``send_capped``)."""
        deadline = time.monotonic() + deadline_s
        who = f"miner {miner_hotkey} at {base_url.rstrip('/')}"
        return run_steps(self.handshake_steps(base_url, miner_hotkey),
                         lambda step: send_capped(client, step, who, deadline, MAX_HANDSHAKE_ANSWER_BYTES))

    def key_for(self, client: httpx.Client, base_url: str, miner_hotkey: str) -> tuple[str, bytes]:
        return self.cached_key(base_url, miner_hotkey) or self.handshake(client, base_url, miner_hotkey)

    def request(self, key_uuid: str, key: bytes, miner_hotkey: str, data: dict) -> tuple[bytes, dict[str, str]]:
        """The encrypted body and the signed headers of one POST of ``data``."""
        headers = fiber.request_headers(self.keypair, miner_hotkey, key_uuid)
        headers["content-type"] = fiber.BODY_CONTENT_TYPE
        return fiber.encrypt_payload(key, data), headers

    def post(self, client: httpx.Client, base_url: str, path: str, miner_hotkey: str, data: dict) -> httpx.Response:
        """POST ``data`` encrypted; on 400 ``No symmetric key found`` redo the handshake once."""
        url = base_url.rstrip("/") + path
        for attempt in range(2):
            key_uuid, key = self.key_for(client, base_url, miner_hotkey)
            body, headers = self.request(key_uuid, key, miner_hotkey, data)
            response = client.post(url, content=body, headers=headers)
            if attempt == 0 and is_missing_key(response):
                self.forget(base_url, miner_hotkey)
                continue
            return response
        return response


def send_capped(client: httpx.Client, step: HandshakeStep, who: str, deadline: float, cap: int) -> tuple[int, bytes]:
    """One handshake call: (HTTP status, body), uncompressed, at most ``cap`` bytes, complete by the
    monotonic ``deadline`` (a dripping or stalled miner is cut there); FiberHandshakeError otherwise."""
    def left() -> float:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise FiberHandshakeError(f"{who}: {step.url}: no complete answer within the handshake deadline")
        return remaining

    try:
        with client.stream(step.method, step.url, content=step.body, timeout=httpx.Timeout(left()),
                           headers={**step.headers, "accept-encoding": "identity"}) as response:
            encoding = response.headers.get("content-encoding", "identity").strip().lower()
            declared = response.headers.get("content-length", "")
            if encoding not in ("", "identity") or (declared.isdigit() and int(declared) > cap):
                raise FiberHandshakeError(f"{who}: {step.url}: answer refused (content-encoding {encoding[:40]!r}, "
                                          f"{declared or 'no'} content-length; at most {cap} bytes, uncompressed)")
            received = bytearray()
            for chunk in response.iter_bytes():
                received.extend(chunk)
                if len(received) > cap:
                    raise FiberHandshakeError(f"{who}: {step.url}: answer over {cap} bytes")
                left()
            return response.status_code, bytes(received)
    except httpx.TimeoutException:
        raise FiberHandshakeError(f"{who}: {step.url}: no complete answer within the handshake deadline") from None


def is_missing_key(response: httpx.Response) -> bool:
    """True for a miner's 400 ``No symmetric key found`` (it lost or expired our key)."""
    if response.status_code != 400:
        return False
    try:
        return fiber.NO_KEY_MESSAGE in json.dumps(response.json())
    except ValueError:
        return fiber.NO_KEY_MESSAGE in response.text

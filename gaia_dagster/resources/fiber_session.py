"""The validator's side of the Fiber transport (``gaia_dagster.core.fiber``): handshake, key cache,
encrypted requests. Network calls only; the rules live in core.

A miner's symmetric key is cached at most ``VALIDATOR_KEY_TTL_S`` (2 h); when the miner answers
400 ``No symmetric key found`` (it restarted, or expired the key) the handshake is redone once.
``insecure_tls`` lists miner base URLs whose self-signed certificates are accepted (as deployed).
"""

from __future__ import annotations

import json
import secrets
import threading
import time
from typing import Any, Iterable

import httpx
from bittensor_wallet import Keypair

from gaia_dagster.core import fiber


class FiberHandshakeError(Exception):
    """The key exchange with a miner failed (named with the miner and the step)."""


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

    def handshake(self, client: httpx.Client, base_url: str, miner_hotkey: str) -> tuple[str, bytes]:
        """``GET /public-encryption-key``, then ``POST /exchange-symmetric-key`` with a fresh key."""
        base = base_url.rstrip("/")
        who = f"miner {miner_hotkey} at {base}"
        try:
            answer = client.get(base + fiber.PUBLIC_KEY_PATH)
            if answer.status_code != 200:
                raise FiberHandshakeError(f"{who}: {fiber.PUBLIC_KEY_PATH}: HTTP {answer.status_code}")
            public_pem = str(answer.json()["public_key"])
            key, key_uuid = secrets.token_bytes(fiber.SYMMETRIC_KEY_BYTES), fiber.new_key_uuid()
            body = {"encrypted_symmetric_key": fiber.encrypt_symmetric_key(public_pem, key)}
            headers = fiber.request_headers(self.keypair, miner_hotkey, key_uuid)
            answer = client.post(base + fiber.EXCHANGE_KEY_PATH, json=body, headers=headers)
        except (ValueError, KeyError, TypeError) as exc:
            raise FiberHandshakeError(f"{who}: bad public key answer: {type(exc).__name__}: {exc}") from exc
        if answer.status_code != 200:
            raise FiberHandshakeError(f"{who}: {fiber.EXCHANGE_KEY_PATH}: HTTP {answer.status_code}: "
                                      f"{answer.content[:200]!r}")
        with self._lock:
            self._keys[(base, miner_hotkey)] = (key_uuid, key, time.monotonic() + self.key_ttl_s)
        return key_uuid, key

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


def is_missing_key(response: httpx.Response) -> bool:
    """True for a miner's 400 ``No symmetric key found`` (it lost or expired our key)."""
    if response.status_code != 400:
        return False
    try:
        return fiber.NO_KEY_MESSAGE in json.dumps(response.json())
    except ValueError:
        return fiber.NO_KEY_MESSAGE in response.text

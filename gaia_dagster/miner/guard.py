"""The reference miner's transport guard: who may ask, decided from the headers before the body is read.

Fiber (``gaia_dagster.core.fiber``) with the miner's own limits. Every POST is checked in this order,
each step cheaper than the state it protects:

1. the five signed headers present and of sane length (401 ``unsigned request``);
2. the nonce well formed and within 120 s (401, stateless);
3. the validator's sr25519 signature of ``{nonce}:{miner_hotkey}:{uuid}`` (401);
4. ``miner-hotkey`` is this miner (401; fiber itself does not check it);
5. the validator is served: allowlist or stake table, ``miner/access.py`` (403);
6. the nonce not seen before from this validator (401 replayed);
7. the validator's own token bucket (429): one hotkey's flood spends only its own tokens;
8. then the nonce is remembered (per validator, so a flood fills only the flooder's store);
9. the (validator, key id) pair has a symmetric key (400 ``No symmetric key found``).

Only then is the body read (its size is bounded below the app by ``miner/limits.py``) and opened.
Refusals are ``Refused`` with the HTTP status to answer.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from typing import Any, Mapping

from fastapi import Request
from fastapi.responses import JSONResponse

from gaia_dagster.core import fiber
from gaia_dagster.core.states import MinerJobStatus
from gaia_dagster.miner.access import AccessPolicy, Refused, TokenBuckets

NO_STORE = {"zarr_store_url": None, "verification_hash": None, "access_token": None}
MAX_HEADER_CHARS = {fiber.HEADER_KEY_UUID: 128, fiber.HEADER_VALIDATOR: 64, fiber.HEADER_MINER: 64,
                    fiber.HEADER_NONCE: 64, fiber.HEADER_SIGNATURE: 160}
MAX_KEYS_PER_VALIDATOR = 64


class FiberKeys:
    """The miner's side of the Fiber handshake: its RSA key (new at every start, as fiber's) and the
    symmetric keys validators exchanged, kept ``key_ttl_s`` (5 h) and at most ``per_validator`` per
    validator hotkey (the oldest is dropped; its holder re-handshakes on ``No symmetric key found``)."""

    def __init__(self, key_ttl_s: float = fiber.MINER_KEY_TTL_S, per_validator: int = MAX_KEYS_PER_VALIDATOR):
        self.private_key = fiber.new_rsa_key()
        self.public_pem = fiber.public_pem(self.private_key)
        self.key_ttl_s = key_ttl_s
        self.per_validator = max(1, per_validator)
        self._keys: dict[str, OrderedDict[str, tuple[bytes, float]]] = {}
        self._lock = threading.Lock()

    def store(self, validator: str, key_uuid: str, key: bytes) -> None:
        """Keep a validator's new key; expired keys and any beyond the per-validator cap go."""
        with self._lock:
            now = time.monotonic()
            keys = self._keys.setdefault(validator, OrderedDict())
            for uuid in [u for u, (_, expiry) in keys.items() if expiry <= now]:
                del keys[uuid]
            keys[key_uuid] = (key, now + self.key_ttl_s)
            keys.move_to_end(key_uuid)
            while len(keys) > self.per_validator:
                keys.popitem(last=False)

    def lookup(self, validator: str, key_uuid: str) -> bytes | None:
        """The live key of (validator, key id), or None."""
        with self._lock:
            found = self._keys.get(validator, {}).get(key_uuid)
        return found[0] if found is not None and found[1] > time.monotonic() else None

    def count(self, validator: str) -> int:
        with self._lock:
            return len(self._keys.get(validator, {}))


class MinerGuard:
    """The miner's transport guard (the order of checks is in the module docstring)."""

    def __init__(self, hotkey: str, access: AccessPolicy, buckets: TokenBuckets):
        self.hotkey = hotkey
        self.access = access
        self.buckets = buckets
        self.keys = FiberKeys()
        self._nonces: dict[str, fiber.NonceStore] = {}
        self._lock = threading.Lock()

    def _nonce_store(self, validator: str) -> fiber.NonceStore:
        with self._lock:
            return self._nonces.setdefault(validator, fiber.NonceStore())

    def check_headers(self, headers: Mapping[str, str]) -> str:
        """Steps 1-8 of the guard on a request's headers; returns the validator's hotkey."""
        values = {name: fiber.header(headers, name) for name in fiber.SIGNED_HEADERS}
        missing = [name for name, value in values.items() if not value]
        if missing:
            raise Refused(401, f"unsigned request: missing {', '.join(missing)}")
        overlong = [name for name, value in values.items() if len(value) > MAX_HEADER_CHARS[name]]
        if overlong:
            raise Refused(401, f"malformed request: header {', '.join(overlong)} too long")
        nonce, validator, miner = values[fiber.HEADER_NONCE], values[fiber.HEADER_VALIDATOR], values[fiber.HEADER_MINER]
        if not fiber.nonce_is_fresh(nonce, time.time_ns()):
            raise Refused(401, f"invalid nonce {nonce[:40]!r}: stale, from the future or malformed")
        message = fiber.signed_message(nonce, miner, values[fiber.HEADER_KEY_UUID])
        if not fiber.signature_valid(message, values[fiber.HEADER_SIGNATURE], validator):
            raise Refused(401, f"bad signature: not validator {validator}'s signature")
        if miner != self.hotkey:
            raise Refused(401, f"the request is for miner {miner!r}, not this miner")
        self.access.check(validator)
        nonces = self._nonce_store(validator)
        if nonces.seen(nonce):
            raise Refused(401, f"invalid nonce {nonce[:40]!r}: replayed")
        wait_s = self.buckets.take(validator)
        if wait_s is not None:
            raise Refused(429, f"rate limited: validator {validator} sends more than "
                               f"{self.buckets.rate_per_s:g} requests/s (burst {self.buckets.burst:g})", wait_s)
        if not nonces.accept(nonce):
            raise Refused(401, f"invalid nonce {nonce[:40]!r}: replayed or stale")
        return validator

    def admit(self, headers: Mapping[str, str]) -> bytes:
        """A POST's headers pass the guard and name a key this miner holds: that symmetric key."""
        validator = self.check_headers(headers)
        key = self.keys.lookup(validator, fiber.header(headers, fiber.HEADER_KEY_UUID))
        if key is None:
            raise Refused(400, fiber.NO_KEY_MESSAGE)
        return key

    def exchange(self, headers: Mapping[str, str], body: bytes) -> None:
        """``/exchange-symmetric-key``: the body (read after ``check_headers``) holds the validator's
        RSA-OAEP-encrypted symmetric key, kept under (validator, key id); 400 when it does not open."""
        validator = fiber.header(headers, fiber.HEADER_VALIDATOR)
        try:
            encrypted = fiber.parse_exchange_body(body)
            key = fiber.decrypt_symmetric_key(self.keys.private_key, encrypted)
        except (ValueError, KeyError, TypeError) as exc:
            raise Refused(400, f"bad key exchange: {type(exc).__name__}") from None
        self.keys.store(validator, fiber.header(headers, fiber.HEADER_KEY_UUID), key)


def open_body(key: bytes, body: bytes) -> dict[str, Any]:
    """A verified request's decrypted JSON payload (400 when it does not open with the key)."""
    try:
        return fiber.decrypt_payload(key, body)
    except fiber.FiberRejected as exc:
        raise Refused(exc.status, exc.reason) from None


def rejected(hotkey: str, request: Request, exc: Refused) -> JSONResponse:
    """The answer to a refused request, naming the miner, the path and the reason."""
    headers = {"retry-after": str(max(1, round(exc.retry_after_s)))} if exc.retry_after_s is not None else None
    return JSONResponse({"status": MinerJobStatus.ERROR.value, "job_id": None, "message": f"miner {hotkey}: refused "
                         f"{request.url.path}: {exc.reason}", **NO_STORE}, exc.status, headers=headers)

"""The reference miner's transport guard: who may ask, checked before a request's body is read.

Fiber (``gaia_dagster.core.fiber``): the miner's RSA key and the symmetric keys validators exchanged
(``FiberKeys``), the signed headers of every POST (``check_fiber_headers``) and the encrypted body
(``open_fiber_body``). Refusals are ``TransportRejected`` with the HTTP status to answer.
"""

from __future__ import annotations

import json
import threading
import time
from typing import TYPE_CHECKING, Any

from fastapi import Request
from fastapi.responses import JSONResponse

from gaia_dagster.core import fiber
from gaia_dagster.core.transport import TransportRejected, verify_request

if TYPE_CHECKING:
    from gaia_dagster.miner.app import MinerState

NO_STORE = {"zarr_store_url": None, "verification_hash": None, "access_token": None}


def check_transport(state: MinerState, headers: Any, body: bytes) -> str | None:
    """Transport rule: a signed, fresh, unreplayed request from an allowed validator (the validator's
    hotkey), or None when the miner does not require signatures. Raises ``TransportRejected``."""
    if not state.settings.require_signature:
        return None
    return verify_request(headers, body, state.hotkey, nonces=state.nonces,
                          allowed_validators=state.settings.allowed_validators)


class FiberKeys:
    """The miner's side of the Fiber handshake: its RSA key (new at every start, as fiber's), the
    symmetric keys validators exchanged (kept ``MINER_KEY_TTL_S``) and the nonces seen."""

    def __init__(self, key_ttl_s: float = fiber.MINER_KEY_TTL_S):
        self.private_key = fiber.new_rsa_key()
        self.public_pem = fiber.public_pem(self.private_key)
        self.key_ttl_s = key_ttl_s
        self.nonces = fiber.NonceStore()
        self._keys: dict[tuple[str, str], tuple[bytes, float]] = {}
        self._lock = threading.Lock()

    def store(self, validator: str, key_uuid: str, key: bytes) -> None:
        with self._lock:
            now = time.monotonic()
            self._keys = {k: v for k, v in self._keys.items() if v[1] > now}
            self._keys[(validator, key_uuid)] = (key, now + self.key_ttl_s)

    def lookup(self, validator: str, key_uuid: str) -> bytes | None:
        with self._lock:
            found = self._keys.get((validator, key_uuid))
        return found[0] if found is not None and found[1] > time.monotonic() else None


def check_fiber_headers(state: MinerState, headers: Any) -> str:
    """Fiber rule, in fiber's order: headers present, nonce fresh and unseen (401), signature of
    ``{nonce}:{miner_hotkey}:{uuid}`` by the validator (401), ``miner-hotkey`` is this miner (401,
    our addition), the validator served (403). Returns the validator's hotkey."""
    values = {name: fiber.header(headers, name) for name in fiber.SIGNED_HEADERS}
    missing = [name for name, value in values.items() if not value]
    if missing:
        raise TransportRejected(401, f"unsigned request: missing {', '.join(missing)}")
    nonce, validator = values[fiber.HEADER_NONCE], values[fiber.HEADER_VALIDATOR]
    if not state.fiber.nonces.accept(nonce):
        raise TransportRejected(401, f"invalid nonce {nonce[:40]!r}: replayed, stale or malformed")
    message = fiber.signed_message(nonce, values[fiber.HEADER_MINER], values[fiber.HEADER_KEY_UUID])
    if not fiber.signature_valid(message, values[fiber.HEADER_SIGNATURE], validator):
        raise TransportRejected(401, f"bad signature: not validator {validator}'s signature")
    if values[fiber.HEADER_MINER] != state.hotkey:
        raise TransportRejected(401, f"the request is for miner {values[fiber.HEADER_MINER]!r}, not this miner")
    allowed = state.settings.allowed_validators
    if allowed is not None and validator not in set(allowed):
        raise TransportRejected(403, f"validator {validator} is not in this miner's allowlist")
    return validator


def open_fiber_body(state: MinerState, headers: Any, body: bytes) -> bytes:
    """A verified Fiber request's decrypted JSON body (400 ``No symmetric key found`` for an
    unknown (validator, key id) pair or a body that does not open)."""
    validator = check_fiber_headers(state, headers)
    key = state.fiber.lookup(validator, fiber.header(headers, fiber.HEADER_KEY_UUID))
    if key is None:
        raise TransportRejected(400, fiber.NO_KEY_MESSAGE)
    try:
        payload = fiber.decrypt_payload(key, body)
    except fiber.FiberRejected as exc:
        raise TransportRejected(exc.status, exc.reason) from None
    return json.dumps(payload).encode("utf-8")


def rejected(state: MinerState, request: Request, exc: TransportRejected) -> JSONResponse:
    """The answer to a request refused by the transport rule (401, 403 or 503)."""
    return JSONResponse({"status": "error", "job_id": None, "message": f"miner {state.hotkey}: refused "
                         f"{request.url.path}: {exc.reason}", **NO_STORE}, exc.status)

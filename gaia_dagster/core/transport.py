"""Signed validator -> miner requests (the request-signing rule of the Gaia miner API).

Every validator request carries three headers:

- ``X-Gaia-Validator``: the validator's ss58 hotkey;
- ``X-Gaia-Nonce``: ``{unix time in ms}-{random hex}``;
- ``X-Gaia-Signature``: hex sr25519 signature, by that hotkey, of the UTF-8 bytes of
  ``{nonce}.{validator_ss58}.{miner_ss58}.{sha256 hex of the request body bytes}``.

The miner verifies against its own hotkey, so a request signed for one miner cannot be replayed to
another; the body digest binds the exact bytes sent; the nonce's time bounds its age (60 s either
way) and a ``NonceCache`` refuses a nonce seen twice within that window.

The pure part (message, nonce, verification) needs only ``bittensor_wallet``; ``SignedTransport``
is the validator-side signer that ``MinerClient`` takes.
"""

from __future__ import annotations

import hashlib
import heapq
import secrets
import threading
import time
from typing import Iterable, Mapping, Protocol

from bittensor_wallet import Keypair

HEADER_VALIDATOR = "X-Gaia-Validator"
HEADER_NONCE = "X-Gaia-Nonce"
HEADER_SIGNATURE = "X-Gaia-Signature"
MAX_AGE_MS = 60_000
MAX_NONCE_CHARS = 128


class TransportRejected(Exception):
    """A request failed the transport rule: ``status`` is the HTTP status to answer (401/403/503)."""

    def __init__(self, status: int, reason: str):
        super().__init__(f"HTTP {status}: {reason}")
        self.status = status
        self.reason = reason


def now_in_ms() -> int:
    """Unix time in milliseconds."""
    return int(time.time() * 1000)


def body_digest(body: bytes) -> str:
    """Body rule: the sha256 hex digest of the exact request body bytes (empty body included)."""
    return hashlib.sha256(body or b"").hexdigest()


def signed_message(nonce: str, validator_ss58: str, miner_ss58: str, body: bytes) -> bytes:
    """Message rule: UTF-8 of ``{nonce}.{validator_ss58}.{miner_ss58}.{sha256 hex of body}``."""
    return f"{nonce}.{validator_ss58}.{miner_ss58}.{body_digest(body)}".encode("utf-8")


def make_nonce(now_ms: int | None = None) -> str:
    """Nonce rule: ``{unix time in ms}-{32 random hex digits}``."""
    return f"{now_in_ms() if now_ms is None else int(now_ms)}-{secrets.token_hex(16)}"


def nonce_time_ms(nonce: str) -> int:
    """The millisecond time of a nonce; a malformed nonce is a 401."""
    stamp, sep, rand = nonce.partition("-")
    if not sep or not stamp.isdigit() or not rand or len(nonce) > MAX_NONCE_CHARS:
        raise TransportRejected(401, f"malformed {HEADER_NONCE} {nonce[:40]!r} (expected '<unix ms>-<hex>')")
    try:
        int(rand, 16)
    except ValueError:
        raise TransportRejected(401, f"malformed {HEADER_NONCE} {nonce[:40]!r}: the random part is not hex") from None
    return int(stamp)


def check_freshness(nonce: str, now_ms: int, max_age_ms: int = MAX_AGE_MS) -> int:
    """Freshness rule: the nonce's time is within ``max_age_ms`` of now, in the past or the future."""
    stamp = nonce_time_ms(nonce)
    if now_ms - stamp > max_age_ms:
        raise TransportRejected(401, f"stale nonce: {now_ms - stamp} ms old (at most {max_age_ms} ms)")
    if stamp - now_ms > max_age_ms:
        raise TransportRejected(401, f"nonce from the future: {stamp - now_ms} ms ahead (at most {max_age_ms} ms)")
    return stamp


def sign_request(keypair: Keypair, miner_ss58: str, body: bytes, now_ms: int | None = None) -> dict[str, str]:
    """The three transport headers of a request from ``keypair``'s hotkey to ``miner_ss58``."""
    nonce = make_nonce(now_ms)
    validator = keypair.ss58_address
    signature = keypair.sign(signed_message(nonce, validator, miner_ss58, body)).hex()
    return {HEADER_VALIDATOR: validator, HEADER_NONCE: nonce, HEADER_SIGNATURE: signature}


def _header(headers: Mapping[str, str], name: str) -> str:
    """A header by case-insensitive name ('' when absent); works on plain dicts and HTTP headers."""
    value = headers.get(name)
    if value is None:
        lowered = name.lower()
        value = next((v for k, v in headers.items() if k.lower() == lowered), None)
    return str(value or "").strip()


def _signature_valid(message: bytes, signature_hex: str, validator_ss58: str) -> bool:
    """True when ``signature_hex`` (optionally ``0x``-prefixed) is the validator's sr25519 signature."""
    try:
        signature = bytes.fromhex(signature_hex.removeprefix("0x"))
        return bool(Keypair(ss58_address=validator_ss58).verify(message, signature))
    except Exception:  # noqa: BLE001 - a bad address or signature is just "not valid"
        return False


def verify_request(headers: Mapping[str, str], body: bytes, miner_ss58: str, now_ms: int | None = None,
                   max_age_ms: int = MAX_AGE_MS, nonces: "NonceCache | None" = None,
                   allowed_validators: Iterable[str] | None = None) -> str:
    """Verify a request to ``miner_ss58``; return the validator's ss58 hotkey.

    Order: all three headers present, nonce well formed and fresh, signature valid (each a 401);
    then, when given, the allowlist (403) and the replay cache (401 on a reused nonce).
    """
    validator = _header(headers, HEADER_VALIDATOR)
    nonce = _header(headers, HEADER_NONCE)
    signature = _header(headers, HEADER_SIGNATURE)
    missing = [n for n, v in ((HEADER_VALIDATOR, validator), (HEADER_NONCE, nonce), (HEADER_SIGNATURE, signature))
               if not v]
    if missing:
        raise TransportRejected(401, f"unsigned request: missing {', '.join(missing)}")
    now_ms = now_in_ms() if now_ms is None else int(now_ms)
    stamp = check_freshness(nonce, now_ms, max_age_ms)
    if not _signature_valid(signed_message(nonce, validator, miner_ss58, body), signature, validator):
        raise TransportRejected(401, f"bad signature: not validator {validator}'s signature of this request "
                                     f"to miner {miner_ss58}")
    if allowed_validators is not None and validator not in set(allowed_validators):
        raise TransportRejected(403, f"validator {validator} is not in this miner's allowlist")
    if nonces is not None:
        nonces.check_and_add(validator, nonce, expires_ms=stamp + max_age_ms, now_ms=now_ms)
    return validator


class NonceCache:
    """Replay rule: a (validator, nonce) pair is accepted once while its nonce could still be fresh.

    Entries expire when the nonce's time plus the freshness window has passed (after that the
    freshness rule refuses it anyway). The cache is bounded: when it is full of unexpired nonces a
    new one is refused with 503 (fail closed, never forgetting a nonce that could still be replayed).
    """

    def __init__(self, max_entries: int = 100_000):
        self.max_entries = max(1, max_entries)
        self._seen: dict[tuple[str, str], int] = {}
        self._expiry: list[tuple[int, tuple[str, str]]] = []
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._seen)

    def _purge(self, now_ms: int) -> None:
        """Drop every entry whose expiry time has passed."""
        while self._expiry and self._expiry[0][0] < now_ms:
            _, key = heapq.heappop(self._expiry)
            self._seen.pop(key, None)

    def check_and_add(self, validator: str, nonce: str, expires_ms: int, now_ms: int | None = None) -> None:
        """Record the nonce; 401 when this validator already used it, 503 when the cache is full."""
        now_ms = now_in_ms() if now_ms is None else int(now_ms)
        key = (validator, nonce)
        with self._lock:
            self._purge(now_ms)
            if key in self._seen:
                raise TransportRejected(401, f"replayed request: validator {validator} already used nonce {nonce}")
            if len(self._seen) >= self.max_entries:
                raise TransportRejected(503, f"nonce cache full ({self.max_entries} live nonces); retry later")
            self._seen[key] = expires_ms
            heapq.heappush(self._expiry, (expires_ms, key))


class RequestSigner(Protocol):
    """What ``MinerClient`` needs from a transport: the headers of one request body to one miner.

    The transport is pluggable: any object with this one method works, so a Fiber-compatible
    transport (or another handshake) can be added later without touching the client.
    """

    def headers(self, miner_ss58: str, body: bytes) -> dict[str, str]:
        ...


class SignedTransport:
    """The Gaia signed transport: signs each request body with the validator's hotkey.

    One implementation of ``RequestSigner``; a Fiber-compatible transport can be added beside it
    as another class with the same ``headers(miner_ss58, body)`` method.
    """

    def __init__(self, keypair: Keypair):
        self.keypair = keypair

    @property
    def validator_ss58(self) -> str:
        return self.keypair.ss58_address

    def headers(self, miner_ss58: str, body: bytes) -> dict[str, str]:
        """The transport headers for ``body`` sent to ``miner_ss58`` (a fresh nonce every call)."""
        return sign_request(self.keypair, miner_ss58, body)

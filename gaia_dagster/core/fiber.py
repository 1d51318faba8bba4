"""The Fiber wire protocol (rayonlabs/fiber, encrypted variant): the transport Gaia's miners speak.

Rules, as the deployed code does them (vectors in ``shared/interop/fiber_vectors.json``):

- Handshake: ``GET /public-encryption-key`` answers ``{"public_key": RSA-2048 PEM, "timestamp"}``;
  the validator draws a 32-byte symmetric key and a 64-hex-character key id and
  ``POST /exchange-symmetric-key`` with ``{"encrypted_symmetric_key": base64(RSA-OAEP-SHA256(key))}``
  and the signed headers below (the key id in ``symmetric-key-uuid``).
- Every POST carries ``symmetric-key-uuid``, ``validator-hotkey``, ``miner-hotkey``, ``nonce``
  (``{time_ns}_{10 letters or digits}``) and ``signature``: ``"0x"`` + hex of the validator
  hotkey's sr25519 signature of ``"{nonce}:{miner_hotkey}:{uuid}"``.
- The body is Fernet(base64 of the key) over the JSON payload, which carries a fresh ``nonce`` of
  its own; sent as ``application/octet-stream``. Responses are plain JSON.
- The miner refuses a nonce seen before or more than 120 s away (401), a bad signature (401), an
  unknown (validator, key id) pair (400 ``No symmetric key found``), a validator it does not serve
  (403). It keeps symmetric keys 5 h; the validator caches a miner's key at most 2 h.

Crypto comes from ``cryptography`` (RSA-OAEP, Fernet) and ``bittensor_wallet.Keypair`` (sr25519).
"""

from __future__ import annotations

import base64
import json
import secrets
import string
import threading
import time
from typing import Any, Mapping

from bittensor_wallet import Keypair
from cryptography.fernet import Fernet, InvalidToken
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

HEADER_KEY_UUID = "symmetric-key-uuid"
HEADER_VALIDATOR = "validator-hotkey"
HEADER_MINER = "miner-hotkey"
HEADER_NONCE = "nonce"
HEADER_SIGNATURE = "signature"
SIGNED_HEADERS = (HEADER_KEY_UUID, HEADER_VALIDATOR, HEADER_MINER, HEADER_NONCE, HEADER_SIGNATURE)

PUBLIC_KEY_PATH = "/public-encryption-key"
EXCHANGE_KEY_PATH = "/exchange-symmetric-key"
NO_KEY_MESSAGE = "No symmetric key found"
BODY_CONTENT_TYPE = "application/octet-stream"

NONCE_WINDOW_NS = 120 * 1_000_000_000
MINER_KEY_TTL_S = 5 * 3600
VALIDATOR_KEY_TTL_S = 2 * 3600
SYMMETRIC_KEY_BYTES = 32
_NONCE_ALPHABET = string.ascii_letters + string.digits


class FiberRejected(Exception):
    """A request failed a Fiber rule: ``status`` is the HTTP status the miner answers."""

    def __init__(self, status: int, reason: str):
        super().__init__(f"HTTP {status}: {reason}")
        self.status = status
        self.reason = reason


# -- nonces ---------------------------------------------------------------------------------------
def make_nonce(now_ns: int | None = None) -> str:
    """Nonce rule: ``{unix time in ns}_{10 random letters or digits}``."""
    stamp = time.time_ns() if now_ns is None else int(now_ns)
    return f"{stamp}_{''.join(secrets.choice(_NONCE_ALPHABET) for _ in range(10))}"


def nonce_time_ns(nonce: str) -> int | None:
    """The nanosecond time of a nonce (the part before the first ``_``); None when not an integer."""
    try:
        return int(str(nonce).split("_")[0])
    except ValueError:
        return None


def nonce_is_fresh(nonce: str, now_ns: int, window_ns: int = NONCE_WINDOW_NS) -> bool:
    """Freshness rule: the nonce's time is an integer within ``window_ns`` of now, either way."""
    stamp = nonce_time_ns(nonce)
    return stamp is not None and abs(now_ns - stamp) <= window_ns


class NonceStore:
    """Replay rule: a nonce is accepted once, and only while fresh (expired entries are dropped)."""

    def __init__(self, window_ns: int = NONCE_WINDOW_NS):
        self.window_ns = window_ns
        self._seen: dict[str, int] = {}
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._seen)

    def seen(self, nonce: str) -> bool:
        """True when the nonce was accepted before (and not yet dropped as expired)."""
        with self._lock:
            return nonce in self._seen

    def accept(self, nonce: str, now_ns: int | None = None) -> bool:
        """True and remembered when the nonce is fresh and unseen; False otherwise."""
        now_ns = time.time_ns() if now_ns is None else int(now_ns)
        with self._lock:
            if len(self._seen) > 10_000:
                self._seen = {n: t for n, t in self._seen.items() if abs(now_ns - t) <= self.window_ns}
            if nonce in self._seen or not nonce_is_fresh(nonce, now_ns, self.window_ns):
                return False
            self._seen[nonce] = nonce_time_ns(nonce) or 0
            return True


# -- signatures -----------------------------------------------------------------------------------
def signed_message(nonce: str, miner_hotkey: str, key_uuid: str) -> str:
    """Message rule: ``"{nonce}:{miner_hotkey}:{symmetric_key_uuid}"``."""
    return f"{nonce}:{miner_hotkey}:{key_uuid}"


def sign_message(keypair: Keypair, message: str) -> str:
    """``"0x"`` + hex of the sr25519 signature of ``message`` by ``keypair``."""
    return "0x" + keypair.sign(message.encode("utf-8")).hex()


def signature_valid(message: str, signature: str, signer_ss58: str) -> bool:
    """True when ``signature`` (``0x``-hex) is ``signer_ss58``'s sr25519 signature of ``message``
    (bittensor's verify also accepts the ``<Bytes>``-wrapped form, as fiber's does)."""
    try:
        raw = bytes.fromhex(str(signature).removeprefix("0x"))
        return bool(Keypair(ss58_address=signer_ss58).verify(message.encode("utf-8"), raw))
    except Exception:  # noqa: BLE001 - a bad address or signature is just "not valid"
        return False


def new_key_uuid() -> str:
    """A symmetric key id: 64 hex characters."""
    return secrets.token_hex(32)


def request_headers(keypair: Keypair, miner_hotkey: str, key_uuid: str,
                    now_ns: int | None = None) -> dict[str, str]:
    """The five signed headers of one request from ``keypair``'s hotkey to ``miner_hotkey``."""
    nonce = make_nonce(now_ns)
    return {HEADER_KEY_UUID: key_uuid, HEADER_VALIDATOR: keypair.ss58_address, HEADER_MINER: miner_hotkey,
            HEADER_NONCE: nonce, HEADER_SIGNATURE: sign_message(keypair, signed_message(nonce, miner_hotkey, key_uuid))}


def header(headers: Mapping[str, str], name: str) -> str:
    """A header by case-insensitive name ('' when absent); works on plain dicts and HTTP headers."""
    value = headers.get(name)
    if value is None:
        value = next((v for k, v in headers.items() if k.lower() == name.lower()), None)
    return str(value or "").strip()


# -- key exchange and bodies ----------------------------------------------------------------------
def new_rsa_key() -> rsa.RSAPrivateKey:
    """The miner's RSA-2048 key (public exponent 65537)."""
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def public_pem(private_key: rsa.RSAPrivateKey) -> str:
    """The public half as SubjectPublicKeyInfo PEM text."""
    return private_key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo).decode("ascii")


def load_private_pem(pem: str | bytes) -> rsa.RSAPrivateKey:
    key = serialization.load_pem_private_key(pem.encode() if isinstance(pem, str) else pem, password=None)
    if not isinstance(key, rsa.RSAPrivateKey):
        raise ValueError("not an RSA private key")
    return key


def _oaep() -> padding.OAEP:
    return padding.OAEP(mgf=padding.MGF1(algorithm=hashes.SHA256()), algorithm=hashes.SHA256(), label=None)


def encrypt_symmetric_key(public_key_pem: str, key: bytes) -> str:
    """Exchange rule: base64 (standard alphabet) of RSA-OAEP-SHA256 of the raw symmetric key."""
    public = serialization.load_pem_public_key(public_key_pem.encode("ascii"))
    if not isinstance(public, rsa.RSAPublicKey):
        raise ValueError("the miner's public key is not RSA")
    return base64.b64encode(public.encrypt(key, _oaep())).decode("ascii")


def decrypt_symmetric_key(private_key: rsa.RSAPrivateKey, encrypted_b64: str) -> bytes:
    """The raw symmetric key of an exchange body; ValueError when it does not decrypt."""
    return private_key.decrypt(base64.b64decode(encrypted_b64), _oaep())


def parse_exchange_body(body: bytes) -> str:
    """The ``encrypted_symmetric_key`` (base64 text) of an exchange body; ValueError otherwise."""
    data = json.loads(body)
    encrypted = data.get("encrypted_symmetric_key") if isinstance(data, dict) else None
    if not isinstance(encrypted, str):
        raise ValueError("the body is not {\"encrypted_symmetric_key\": <base64 text>}")
    return encrypted


def validator_fernet_key(key: bytes) -> bytes:
    """The validator's Fernet key: standard base64 of the raw key (``+`` and ``/`` kept)."""
    return base64.b64encode(key)


def miner_fernet_key(key: bytes) -> bytes:
    """The miner's Fernet key: url-safe base64 of the raw key (Fernet decodes either alphabet)."""
    return base64.urlsafe_b64encode(key)


def encrypt_payload(key: bytes, data: dict[str, Any], now_ns: int | None = None) -> bytes:
    """Body rule: Fernet over the JSON of ``{"data": data, "nonce": <fresh nonce>}``."""
    plaintext = json.dumps({"data": data, "nonce": make_nonce(now_ns)}).encode("utf-8")
    return Fernet(validator_fernet_key(key)).encrypt(plaintext)


def decrypt_payload(key: bytes, token: bytes) -> dict[str, Any]:
    """The JSON payload of a Fernet body; FiberRejected(400) when it does not open or parse."""
    try:
        payload = json.loads(Fernet(miner_fernet_key(key)).decrypt(token))
    except (InvalidToken, ValueError) as exc:
        raise FiberRejected(400, f"the body does not decrypt with this symmetric key ({type(exc).__name__})") from None
    if not isinstance(payload, dict):
        raise FiberRejected(400, "the decrypted body is not a JSON object")
    return payload

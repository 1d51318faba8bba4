"""sr25519 signatures of manifests by miner hotkeys (bittensor-wallet's Keypair)."""

from __future__ import annotations

from bittensor_wallet import Keypair


def keypair_from_uri(uri: str) -> Keypair:
    """A keypair from a dev URI (``//name``) or a mnemonic."""
    return Keypair.create_from_uri(uri)


def sign_manifest(keypair: Keypair, manifest_bytes: bytes) -> str:
    """Hex sr25519 signature of the exact manifest bytes."""
    return keypair.sign(manifest_bytes).hex()


def signature_bytes(signature: bytes | str) -> bytes | None:
    """``manifest.sig`` as the 64 signature bytes: hex text (ours, optionally ``0x``, whitespace
    around) or the 64 raw bytes Gaia's miners write; None when it is neither."""
    raw = signature.encode("latin-1", "replace") if isinstance(signature, str) else bytes(signature)
    text = raw.strip()
    text = text[2:] if text[:2] in (b"0x", b"0X") else text
    if len(text) == 128:
        try:
            return bytes.fromhex(text.decode("ascii"))
        except (ValueError, UnicodeDecodeError):
            pass
    return raw if len(raw) == 64 else None


def verify_manifest_signature(manifest_bytes: bytes, signature: bytes | str, ss58_address: str) -> bool:
    """True when ``signature`` (hex or 64 raw bytes, ``signature_bytes``) is the hotkey's sr25519
    signature of the manifest bytes."""
    sig = signature_bytes(signature)
    if sig is None:
        return False
    try:
        return bool(Keypair(ss58_address=ss58_address).verify(manifest_bytes, sig))
    except (ValueError, TypeError):
        return False


def sign_manifest_raw(keypair: Keypair, manifest_bytes: bytes) -> bytes:
    """The 64 raw signature bytes, as Gaia's miners write ``manifest.sig``."""
    return bytes(keypair.sign(manifest_bytes))

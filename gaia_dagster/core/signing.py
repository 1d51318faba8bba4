"""sr25519 signatures of manifests by miner hotkeys (bittensor-wallet's Keypair)."""

from __future__ import annotations

from bittensor_wallet import Keypair


def keypair_from_uri(uri: str) -> Keypair:
    """A keypair from a dev URI (``//name``) or a mnemonic."""
    return Keypair.create_from_uri(uri)


def sign_manifest(keypair: Keypair, manifest_bytes: bytes) -> str:
    """Hex sr25519 signature of the exact manifest bytes."""
    return keypair.sign(manifest_bytes).hex()


def verify_manifest_signature(manifest_bytes: bytes, signature_hex: str, ss58_address: str) -> bool:
    """True when ``signature_hex`` is the hotkey's signature of the manifest bytes."""
    try:
        signature = bytes.fromhex(signature_hex.strip())
        return bool(Keypair(ss58_address=ss58_address).verify(manifest_bytes, signature))
    except (ValueError, TypeError):
        return False

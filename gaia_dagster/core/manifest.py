"""The forecast store's manifest (GAIA_SPEC section 2).

``manifest.json`` = ``{manifest_schema_version, chunk_hash_algorithm: "sha256", signer_hotkey_ss58,
files: {relpath: sha256(relpath + "\\0" + bytes)}}`` serialised with sorted keys; the
verification hash is sha256 of those exact bytes.
"""

from __future__ import annotations

import hashlib
import json
from typing import Mapping

MANIFEST_FILE = "manifest.json"
SIGNATURE_FILE = "manifest.sig"
SCHEMA_VERSION = "1.0"


class ManifestError(Exception):
    """The manifest or a file it covers does not verify."""


def file_digest(relpath: str, data: bytes) -> str:
    """Digest of one store file: sha256(relpath + NUL + bytes), hex."""
    h = hashlib.sha256(relpath.encode("utf-8"))
    h.update(b"\0")
    h.update(data)
    return h.hexdigest()


def build_manifest(files: Mapping[str, bytes], signer_hotkey_ss58: str) -> bytes:
    """The manifest bytes over ``files`` (relpath -> bytes), serialised with sorted keys."""
    body = {
        "manifest_schema_version": SCHEMA_VERSION,
        "chunk_hash_algorithm": "sha256",
        "signer_hotkey_ss58": signer_hotkey_ss58,
        "files": {path: file_digest(path, data) for path, data in sorted(files.items())},
    }
    return json.dumps(body, sort_keys=True, separators=(",", ":")).encode("utf-8")


def verification_hash(manifest_bytes: bytes) -> str:
    """sha256 of the exact manifest bytes, hex."""
    return hashlib.sha256(manifest_bytes).hexdigest()


def parse_and_verify_manifest(manifest_bytes: bytes, claimed_hash: str | None, expected_signer: str) -> dict:
    """Manifest rule (GAIA_SPEC 2), checked in order: the sha256 of the bytes equals the claimed
    verification hash, then the manifest's signer is the expected miner hotkey.

    The signature itself is checked by ``core.signing.verify_manifest_signature``.
    """
    computed = verification_hash(manifest_bytes)
    if not claimed_hash or computed != claimed_hash:
        raise ManifestError(f"manifest hash {computed} does not match the claimed verification hash {claimed_hash}")
    try:
        manifest = json.loads(manifest_bytes)
    except ValueError as exc:
        raise ManifestError(f"manifest is not valid JSON: {exc}") from exc
    if not isinstance(manifest, dict) or not isinstance(manifest.get("files"), dict):
        raise ManifestError("manifest has no files table")
    if manifest.get("chunk_hash_algorithm") != "sha256":
        raise ManifestError(f"unsupported chunk hash algorithm {manifest.get('chunk_hash_algorithm')!r}")
    if manifest.get("signer_hotkey_ss58") != expected_signer:
        raise ManifestError(f"manifest signed for {manifest.get('signer_hotkey_ss58')!r}, expected the miner "
                            f"{expected_signer}")
    return manifest


def verify_file(manifest: dict, relpath: str, data: bytes) -> None:
    """A file read from the store must be listed in the manifest with exactly this digest."""
    expected = manifest.get("files", {}).get(relpath)
    if expected is None:
        raise ManifestError(f"chunk {relpath} does not match the manifest: it is not listed there")
    if file_digest(relpath, data) != expected:
        raise ManifestError(f"chunk {relpath} does not match the manifest (tampered or corrupt)")

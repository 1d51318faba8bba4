"""The forecast store's manifest (GAIA_SPEC section 2).

``manifest.json`` = ``{manifest_schema_version, chunk_hash_algorithm: "sha256", signer_hotkey_ss58,
files: {relpath: sha256(relpath + "\\0" + bytes)}}`` serialised with sorted keys; the
verification hash is sha256 of those exact bytes.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Mapping

from gaia_dagster.core.answers import AnswerRejected, parse_json_object

MANIFEST_FILE = "manifest.json"
SIGNATURE_FILE = "manifest.sig"
SCHEMA_VERSION = "1.0"
GAIA_PROFILE_STRUCTURE_VERSION = "3.4.0-verify_on_read_mapper"
"""The ``profile_structure_version`` field deployed Gaia miners write (ignored by the validator)."""


ZARR_METADATA_NAMES = frozenset({".zmetadata", ".zgroup", ".zattrs", ".zarray", "zarr.json"})
STORE_CHANGED = "store changed after freeze"
MAX_MANIFEST_DEPTH = 8


class ManifestError(Exception):
    """The manifest or a file it covers does not verify."""


class StoreChanged(ManifestError):
    """A read after verification does not match the manifest frozen at verification."""


@dataclass(frozen=True)
class PinnedManifest:
    """The manifest frozen at verification (issue 10): its hash and every file's digest. Every later
    read of the store must serve this very manifest and chunks with exactly these digests."""

    manifest_hash: str
    files: Mapping[str, str]


def data_digest(files: Mapping[str, str]) -> str:
    """Copy rule: the digest of a store's data, sha256 over the sorted ``path NUL digest LF`` lines of
    its data chunks. Two stores with equal data digests hold the same chunks under the same paths.

    Metadata files (``.zattrs``, ``.zgroup``, ``.zarray``, ``.zmetadata``) and the manifest files are
    left out: they are free text a copier can change at no cost (an attribute naming its own hotkey)
    without changing a single forecast value, whereas each chunk digest covers its path and bytes.
    """
    h = hashlib.sha256()
    for path in sorted(files):
        name = path.rsplit("/", 1)[-1]
        if name in ZARR_METADATA_NAMES or path in (MANIFEST_FILE, SIGNATURE_FILE):
            continue
        h.update(f"{path}\0{files[path]}\n".encode("utf-8"))
    return h.hexdigest()


def file_digest(relpath: str, data: bytes) -> str:
    """Digest of one store file: sha256(relpath + NUL + bytes), hex."""
    h = hashlib.sha256(relpath.encode("utf-8"))
    h.update(b"\0")
    h.update(data)
    return h.hexdigest()


def build_manifest(files: Mapping[str, bytes], signer_hotkey_ss58: str, gaia_format: bool = False) -> bytes:
    """The manifest bytes over ``files`` (relpath -> bytes), serialised with sorted keys: compact
    (ours), or as Gaia's miners write it (``gaia_format``: indented by 4, with their
    ``profile_structure_version`` field). The validator accepts both: it hashes the exact bytes."""
    body = {
        "manifest_schema_version": SCHEMA_VERSION,
        "chunk_hash_algorithm": "sha256",
        "signer_hotkey_ss58": signer_hotkey_ss58,
        "files": {path: file_digest(path, data) for path, data in sorted(files.items())},
    }
    if gaia_format:
        body["profile_structure_version"] = GAIA_PROFILE_STRUCTURE_VERSION
        return json.dumps(body, sort_keys=True, indent=4).encode("utf-8")
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
        manifest = parse_json_object(manifest_bytes, max_depth=MAX_MANIFEST_DEPTH)
    except AnswerRejected as exc:
        raise ManifestError(f"manifest is not a JSON object within limits: {exc}") from None
    if not isinstance(manifest.get("files"), dict):
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

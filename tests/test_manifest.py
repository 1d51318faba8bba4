"""The store manifest and its signature (GAIA_SPEC section 2): pure rules, no network."""

from __future__ import annotations

import hashlib
import json

import pytest

from gaia_dagster.core.manifest import (
    ManifestError, build_manifest, file_digest, parse_and_verify_manifest, verification_hash, verify_file,
)
from gaia_dagster.core.signing import keypair_from_uri, sign_manifest, verify_manifest_signature

FILES = {"t/0.0.0.0": b"\x00\x01\x02", ".zmetadata": b"{}", "2t/.zarray": b'{"chunks":[1,37,72]}'}


@pytest.fixture(scope="module")
def miner_key():
    return keypair_from_uri("//gaia-miner-0")


def test_file_digest_is_sha256_of_relpath_nul_bytes():
    assert file_digest("t/0.0.0.0", b"abc") == hashlib.sha256(b"t/0.0.0.0\0abc").hexdigest()
    assert file_digest("a", b"bc") != file_digest("ab", b"c")  # the NUL separates path from bytes


def test_manifest_is_sorted_compact_json_with_the_schema_fields():
    manifest = build_manifest(FILES, "5Signer")
    body = json.loads(manifest)
    assert body == {"manifest_schema_version": "1.0", "chunk_hash_algorithm": "sha256",
                    "signer_hotkey_ss58": "5Signer",
                    "files": {rel: file_digest(rel, data) for rel, data in FILES.items()}}
    assert manifest == json.dumps(body, sort_keys=True, separators=(",", ":")).encode()
    assert build_manifest(dict(reversed(list(FILES.items()))), "5Signer") == manifest  # order-independent


def test_verification_hash_is_sha256_of_the_manifest_bytes():
    manifest = build_manifest(FILES, "5Signer")
    assert verification_hash(manifest) == hashlib.sha256(manifest).hexdigest()


def test_parse_checks_the_hash_before_the_signer():
    manifest = build_manifest(FILES, "5Signer")
    assert parse_and_verify_manifest(manifest, verification_hash(manifest), "5Signer")["files"] == \
        json.loads(manifest)["files"]
    with pytest.raises(ManifestError, match="does not match the claimed verification hash"):
        parse_and_verify_manifest(manifest, "0" * 64, "5Other")  # both wrong: the hash is named first
    with pytest.raises(ManifestError, match="does not match the claimed verification hash"):
        parse_and_verify_manifest(manifest, None, "5Signer")
    with pytest.raises(ManifestError, match="5Other"):
        parse_and_verify_manifest(manifest, verification_hash(manifest), "5Other")


def test_parse_refuses_a_manifest_that_is_not_one():
    for junk in (b"not json", b"[]", json.dumps({"files": {}, "chunk_hash_algorithm": "md5",
                                                  "signer_hotkey_ss58": "5Signer"}).encode()):
        with pytest.raises(ManifestError):
            parse_and_verify_manifest(junk, verification_hash(junk), "5Signer")


def test_verify_file_names_the_chunk_on_mismatch_or_absence():
    manifest = json.loads(build_manifest(FILES, "5Signer"))
    verify_file(manifest, "t/0.0.0.0", FILES["t/0.0.0.0"])
    with pytest.raises(ManifestError, match=r"chunk t/0\.0\.0\.0 does not match the manifest"):
        verify_file(manifest, "t/0.0.0.0", b"\x00\x01\x03")
    with pytest.raises(ManifestError, match=r"chunk t/9\.0\.0\.0 does not match the manifest"):
        verify_file(manifest, "t/9.0.0.0", b"")
    with pytest.raises(ManifestError, match="chunk 2t/.zarray does not match"):
        verify_file(manifest, "2t/.zarray", FILES["t/0.0.0.0"])  # right bytes under the wrong name


def test_signature_round_trip_and_rejections(miner_key):
    manifest = build_manifest(FILES, miner_key.ss58_address)
    signature = sign_manifest(miner_key, manifest)
    bytes.fromhex(signature)  # hex text, as stored in manifest.sig
    assert verify_manifest_signature(manifest, signature, miner_key.ss58_address)
    assert verify_manifest_signature(manifest, signature + "\n", miner_key.ss58_address)
    assert not verify_manifest_signature(manifest + b" ", signature, miner_key.ss58_address)
    other = keypair_from_uri("//gaia-miner-1").ss58_address
    assert not verify_manifest_signature(manifest, signature, other)
    assert not verify_manifest_signature(manifest, "zz-not-hex", miner_key.ss58_address)
    assert not verify_manifest_signature(manifest, "00" * 64, miner_key.ss58_address)

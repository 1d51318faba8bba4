"""Fetching a miner's forecast store (GAIA_SPEC section 2): the verified mirror of its files.

The validator asks the miner (through ``MinerClient.kerchunk``) where its store is, reads and
verifies the signed manifest, then mirrors the metadata and the chunks a stage needs, each file
re-hashed against the manifest before it is written. Failures raise ``ManifestError`` (the miner's
fault) or ``MinerClientError`` (transport), naming the miner and the job.
"""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Mapping, Sequence

import httpx

from gaia_dagster.core.manifest import (
    MANIFEST_FILE, SIGNATURE_FILE, STORE_CHANGED, ManifestError, PinnedManifest, StoreChanged,
    parse_and_verify_manifest, verify_file,
)
from gaia_dagster.core.signing import verify_manifest_signature
from gaia_dagster.resources.miner_client import MinerClientError, KerchunkResult, _transport_error, same_origin

if TYPE_CHECKING:
    from gaia_dagster.resources.miner_client import MinerClient

METADATA_NAMES = (".zmetadata", ".zgroup", ".zattrs", ".zarray", "zarr.json")


@dataclass(frozen=True)
class VerifiedStore:
    """A local mirror of (part of) a miner's store whose every file matched the signed manifest."""

    path: Path
    manifest_hash: str
    files_fetched: int
    bytes_fetched: int
    zarr_store_url: str = ""
    files: Mapping[str, str] | None = None  # the verified manifest's {relpath: digest}


def _get(client: "MinerClient", http: httpx.Client, url: str, token: str, who: str) -> bytes:
    """GET one store file with the bearer token, capped in size."""
    deadline = client._deadline()
    try:
        with http.stream("GET", url, headers={"Authorization": f"Bearer {token}"}) as response:
            if response.status_code != 200:
                raise MinerClientError(f"{who}: GET {url}: HTTP {response.status_code}")
            return client._read_capped(response, f"{who}: GET {url}", deadline)
    except httpx.HTTPError as exc:
        raise _transport_error(f"{who}: GET {url}", exc) from exc


def _check_freeze_window(client: "MinerClient", run_start: datetime | None, who: str) -> None:
    """Freeze rule: a manifest must arrive within ``freeze_window`` of the run start."""
    if run_start is None:
        return
    start = run_start.replace(tzinfo=timezone.utc) if run_start.tzinfo is None else run_start
    now = datetime.now(timezone.utc)
    if now > start + client.freeze_window:
        raise ManifestError(f"{who}: manifest read at {now.isoformat()}, after the freeze window "
                            f"that closed at {(start + client.freeze_window).isoformat()}")


def _verified_manifest(client: "MinerClient", http: httpx.Client, store_url: str, answer: KerchunkResult,
                       miner_hotkey: str, who: str) -> dict:
    """Manifest rule, in order: the hash, the signer, then the sr25519 signature."""
    token = answer.access_token or ""
    manifest_bytes = _get(client, http, f"{store_url}/{MANIFEST_FILE}", token, who)
    signature = _get(client, http, f"{store_url}/{SIGNATURE_FILE}", token, who)
    try:
        manifest = parse_and_verify_manifest(manifest_bytes, answer.verification_hash, miner_hotkey)
    except ManifestError as exc:
        raise ManifestError(f"{who}: {exc}") from exc
    if not verify_manifest_signature(manifest_bytes, signature.decode("ascii", "replace"), miner_hotkey):
        raise ManifestError(f"{who}: manifest.sig is not {miner_hotkey}'s signature of the manifest")
    for rel in manifest["files"]:
        if not is_safe_relpath(rel):
            raise ManifestError(f"{who}: manifest lists an unsafe path {rel!r}")
    return manifest


def fetch_verified_store(client: "MinerClient", base_url: str, miner_hotkey: str, job_id: str, dest: Path,
                         time_indices: Sequence[int] | None = None,
                         run_start: datetime | None = None,
                         pinned: PinnedManifest | None = None) -> VerifiedStore:
    """Mirror a completed forecast store under ``dest``, verifying as it reads.

    Order (GAIA_SPEC 2): store URL on the miner's endpoint (SSRF guard); manifest hash, signer,
    signature; freeze window when ``run_start`` is given; then the metadata and only the chunks
    covering ``time_indices`` (all chunks when None), each re-hashed against the manifest before
    it is written. The mirror opens with ``xr.open_zarr(dest, consolidated=True)``.

    With ``pinned`` (the manifest frozen at verification), the manifest served now must be the
    frozen one (same hash) and every file is checked against the frozen digests; otherwise
    ``StoreChanged`` ("store changed after freeze"). The freeze window is not checked again then.
    """
    who = f"miner {miner_hotkey}, job {job_id}"
    answer = client.kerchunk(base_url, miner_hotkey, job_id)
    if answer.status != "completed" or not answer.zarr_store_url or not answer.access_token:
        raise MinerClientError(f"{who}: forecast not available ({answer.status}: {answer.message})")
    store_url = answer.zarr_store_url.rstrip("/")
    if not same_origin(store_url, base_url):
        raise ManifestError(f"{who}: store URL {store_url} is not on the miner's registered endpoint {base_url}")
    with client._client(base_url) as http:
        manifest = _verified_manifest(client, http, store_url, answer, miner_hotkey, who)
        if pinned is not None:
            if answer.verification_hash != pinned.manifest_hash:
                raise StoreChanged(f"{who}: {STORE_CHANGED}: the manifest now served hashes to "
                                   f"{answer.verification_hash}, the frozen one to {pinned.manifest_hash}")
            manifest = {**manifest, "files": dict(pinned.files)}
        else:
            _check_freeze_window(client, run_start, who)
        dest.mkdir(parents=True, exist_ok=True)
        files = sorted(manifest["files"])
        metadata = [f for f in files if is_metadata(f)]
        try:
            total = _mirror(client, http, store_url, answer.access_token, manifest, metadata, dest, who)
            arrays = _arrays_of_mirror(dest, who)
            chunks = select_chunks([f for f in files if not is_metadata(f)], arrays, time_indices)
            total += _mirror(client, http, store_url, answer.access_token, manifest, chunks, dest, who)
        except ManifestError as exc:
            if pinned is None or isinstance(exc, StoreChanged):
                raise
            raise StoreChanged(f"{STORE_CHANGED}: {exc}") from exc
    return VerifiedStore(dest, answer.verification_hash or "", len(metadata) + len(chunks), total, store_url,
                         dict(manifest["files"]))


def _mirror(client: "MinerClient", http: httpx.Client, store_url: str, token: str, manifest: dict,
            files: list[str], dest: Path, who: str) -> int:
    """Download ``files``, verify each against the manifest, then write it under ``dest``."""
    def fetch(rel: str) -> int:
        data = _get(client, http, f"{store_url}/{rel}", token, who)
        try:
            verify_file(manifest, rel, data)
        except ManifestError as exc:
            raise ManifestError(f"{who}: {exc}") from exc
        target = dest / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)
        return len(data)

    with ThreadPoolExecutor(client.fetch_workers) as pool:
        return sum(pool.map(fetch, files))


def is_safe_relpath(rel: str) -> bool:
    """A manifest path must stay inside the store: relative, no ``..``, no backslashes."""
    path = PurePosixPath(rel)
    return bool(rel) and not path.is_absolute() and ".." not in path.parts and "\\" not in rel


def is_metadata(rel: str) -> bool:
    """Zarr metadata files (.zmetadata, .zgroup, .zattrs, .zarray) are always mirrored."""
    return rel.rsplit("/", 1)[-1] in METADATA_NAMES


def _arrays_of_mirror(dest: Path, who: str) -> dict[str, dict]:
    """The array layout from the mirrored ``.zmetadata`` (empty when the store has none)."""
    zmetadata = dest / ".zmetadata"
    if not zmetadata.exists():
        return {}
    try:
        return describe_arrays(zmetadata.read_bytes())
    except (ValueError, KeyError, TypeError) as exc:
        raise ManifestError(f"{who}: .zmetadata is not consolidated Zarr v2 metadata: {exc}") from exc


def _split_chunk_key(rel: str, arrays: dict[str, dict]) -> tuple[str, str] | None:
    """(array, chunk key) of a store file: the longest array name that prefixes the path."""
    owners = [name for name in arrays if rel.startswith(name + "/")]
    if not owners:
        return None
    array = max(owners, key=len)
    return array, rel[len(array) + 1:]


def _covers(info: dict, chunk_key: str, wanted: set[int]) -> bool:
    """Chunk-selection rule: a chunk is needed when its time range holds a wanted index."""
    axis = info["dims"].index("time")
    step = int(info["chunks"][axis])
    try:
        index = int(chunk_key.split(info["separator"])[axis])
    except (ValueError, IndexError):
        return True  # not a chunk key we understand: fetch it (it is still verified)
    return any(index * step <= t < (index + 1) * step for t in wanted)


def select_chunks(files: Sequence[str], arrays: dict[str, dict], time_indices: Sequence[int] | None) -> list[str]:
    """Every chunk of arrays without a time dim (coordinates, and ``time`` itself) and the chunks
    of time-dimensioned arrays that cover one of ``time_indices`` (all chunks when None)."""
    if time_indices is None:
        return list(files)
    wanted = set(int(t) for t in time_indices)
    selected = []
    for rel in files:
        split = _split_chunk_key(rel, arrays)
        if split is None:
            selected.append(rel)
            continue
        array, chunk_key = split
        info = arrays[array]
        if array == "time" or "time" not in info["dims"] or _covers(info, chunk_key, wanted):
            selected.append(rel)
    return selected


def describe_arrays(zmetadata: bytes) -> dict[str, dict]:
    """Array name -> dims, chunk sizes and chunk-key separator, from a Zarr v2 ``.zmetadata``."""
    meta = json.loads(zmetadata)["metadata"]
    arrays = {}
    for key, value in meta.items():
        if key.endswith("/.zarray"):
            name = key[: -len("/.zarray")]
            attrs = meta.get(f"{name}/.zattrs", {})
            arrays[name] = {"dims": list(attrs.get("_ARRAY_DIMENSIONS", [])), "chunks": list(value["chunks"]),
                            "separator": value.get("dimension_separator") or "."}
    return arrays

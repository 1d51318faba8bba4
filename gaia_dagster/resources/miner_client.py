"""The validator's HTTP client for the Gaia miner API. Every network call to a miner lives here.

Errors are ``MinerClientError`` naming the miner, the URL and what went wrong (timeout, refused
connection, HTTP status, malformed JSON, wrong schema, oversized answer). Forecast files are
verified against the manifest as they are read (``ManifestError``).
"""

from __future__ import annotations

import asyncio
import json
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Sequence
from urllib.parse import urlsplit

import httpx

from gaia_dagster.core.contract import PREVIOUS_STEP
from gaia_dagster.core.manifest import (
    MANIFEST_FILE, SIGNATURE_FILE, ManifestError, parse_and_verify_manifest, verify_file,
)
from gaia_dagster.core.signing import verify_manifest_signature

METADATA_NAMES = (".zmetadata", ".zgroup", ".zattrs", ".zarray", "zarr.json")


class MinerClientError(Exception):
    """A miner could not be reached or answered something unusable."""


@dataclass(frozen=True)
class InitiateFetchResult:
    status: str
    job_id: str | None
    message: str
    zarr_store_url: str | None = None
    verification_hash: str | None = None
    access_token: str | None = None


@dataclass(frozen=True)
class PollResult:
    status: str
    job_id: str | None
    message: str


@dataclass(frozen=True)
class KerchunkResult:
    status: str
    message: str
    zarr_store_url: str | None
    verification_hash: str | None
    access_token: str | None


@dataclass(frozen=True)
class VerifiedStore:
    path: Path
    manifest_hash: str
    files_fetched: int
    bytes_fetched: int
    zarr_store_url: str


def _iso(moment: datetime) -> str:
    return moment.isoformat()


def _field(answer: dict[str, Any], name: str, who: str, required: bool = True) -> Any:
    value = answer.get(name)
    if required and not isinstance(value, str):
        raise MinerClientError(f"{who}: answer lacks a string {name!r}: {json.dumps(answer)[:200]}")
    return value


def same_origin(url: str, base_url: str) -> bool:
    """SSRF guard: a store URL must point at the miner's own registered scheme, host and port."""
    a, b = urlsplit(url), urlsplit(base_url)
    return (a.scheme, a.hostname, a.port or (443 if a.scheme == "https" else 80)) == \
        (b.scheme, b.hostname, b.port or (443 if b.scheme == "https" else 80))


class MinerClient:
    """Synchronous calls plus a concurrent poll of many jobs."""

    def __init__(self, connect_timeout: float = 5.0, read_timeout: float = 30.0,
                 max_response_bytes: int = 64 * 1024 * 1024, fetch_workers: int = 4):
        self.timeout = httpx.Timeout(read_timeout, connect=connect_timeout)
        self.max_response_bytes = max_response_bytes
        self.fetch_workers = fetch_workers

    # -- JSON endpoints -------------------------------------------------------------------------
    def _post(self, client: httpx.Client, base_url: str, path: str, miner_hotkey: str, data: dict) -> dict:
        url = base_url.rstrip("/") + path
        who = f"miner {miner_hotkey} at {url}"
        try:
            response = client.post(url, json={"nonce": None, "data": data}, follow_redirects=False)
        except httpx.TimeoutException as exc:
            raise MinerClientError(f"{who}: timeout ({type(exc).__name__})") from exc
        except httpx.HTTPError as exc:
            raise MinerClientError(f"{who}: {type(exc).__name__}: {exc}") from exc
        return self._json(response, who)

    def _json(self, response: httpx.Response, who: str) -> dict:
        if response.status_code != 200:
            raise MinerClientError(f"{who}: HTTP {response.status_code}: {response.text[:200]}")
        if len(response.content) > self.max_response_bytes:
            raise MinerClientError(f"{who}: answer of {len(response.content)} bytes exceeds the cap")
        try:
            answer = response.json()
        except ValueError as exc:
            raise MinerClientError(f"{who}: malformed JSON: {response.text[:200]!r}") from exc
        if not isinstance(answer, dict):
            raise MinerClientError(f"{who}: answer is not a JSON object: {response.text[:200]!r}")
        return answer

    def initiate_fetch(self, base_url: str, miner_hotkey: str, validator_hotkey: str, t0: datetime) -> InitiateFetchResult:
        """Ask the miner to forecast from T0 (inputs T0 and T0-6h)."""
        data = {"forecast_start_time": _iso(t0), "previous_step_time": _iso(t0 - PREVIOUS_STEP),
                "validator_hotkey": validator_hotkey, "expected_miner_hotkey": miner_hotkey}
        with httpx.Client(timeout=self.timeout) as client:
            answer = self._post(client, base_url, "/weather-initiate-fetch", miner_hotkey, data)
        who = f"miner {miner_hotkey} at {base_url}"
        return InitiateFetchResult(
            status=_field(answer, "status", who), job_id=answer.get("job_id"), message=str(answer.get("message") or ""),
            zarr_store_url=answer.get("zarr_store_url"), verification_hash=answer.get("verification_hash"),
            access_token=answer.get("access_token"))

    def poll_job(self, base_url: str, miner_hotkey: str, job_id: str) -> PollResult:
        with httpx.Client(timeout=self.timeout) as client:
            return self._poll(client, base_url, miner_hotkey, job_id)

    def _poll(self, client: httpx.Client, base_url: str, miner_hotkey: str, job_id: str) -> PollResult:
        answer = self._post(client, base_url, "/weather-poll-job-status", miner_hotkey, {"job_id": job_id})
        who = f"miner {miner_hotkey} at {base_url}, job {job_id}"
        return PollResult(_field(answer, "status", who), answer.get("job_id"), str(answer.get("message") or ""))

    def kerchunk(self, base_url: str, miner_hotkey: str, job_id: str) -> KerchunkResult:
        """Store URL, manifest hash and a fresh access token of a completed job."""
        with httpx.Client(timeout=self.timeout) as client:
            answer = self._post(client, base_url, "/weather-kerchunk-request", miner_hotkey, {"job_id": job_id})
        who = f"miner {miner_hotkey} at {base_url}, job {job_id}"
        return KerchunkResult(_field(answer, "status", who), str(answer.get("message") or ""),
                              answer.get("zarr_store_url"), answer.get("verification_hash"),
                              answer.get("access_token"))

    def poll_many(self, jobs: Sequence[tuple[str, str, str]], concurrency: int = 32) -> list[PollResult | MinerClientError]:
        """Poll (base_url, miner_hotkey, job_id) jobs concurrently; errors are returned, not raised."""
        if not jobs:
            return []
        return asyncio.run(self._apoll_many(jobs, concurrency))

    async def _apoll_many(self, jobs: Sequence[tuple[str, str, str]], concurrency: int) -> list:
        semaphore = asyncio.Semaphore(max(1, concurrency))
        async with httpx.AsyncClient(timeout=self.timeout) as client:
            async def one(base_url: str, miner_hotkey: str, job_id: str) -> PollResult | MinerClientError:
                url = base_url.rstrip("/") + "/weather-poll-job-status"
                who = f"miner {miner_hotkey} at {url}, job {job_id}"
                async with semaphore:
                    try:
                        response = await client.post(url, json={"nonce": None, "data": {"job_id": job_id}})
                        answer = self._json(response, who)
                        return PollResult(_field(answer, "status", who), answer.get("job_id"),
                                          str(answer.get("message") or ""))
                    except httpx.TimeoutException as exc:
                        return MinerClientError(f"{who}: timeout ({type(exc).__name__})")
                    except httpx.HTTPError as exc:
                        return MinerClientError(f"{who}: {type(exc).__name__}: {exc}")
                    except MinerClientError as exc:
                        return exc
            return list(await asyncio.gather(*(one(*job) for job in jobs)))

    # -- the forecast store ---------------------------------------------------------------------
    def _get(self, client: httpx.Client, url: str, token: str, who: str) -> bytes:
        try:
            with client.stream("GET", url, headers={"Authorization": f"Bearer {token}"}) as response:
                if response.status_code != 200:
                    raise MinerClientError(f"{who}: GET {url}: HTTP {response.status_code}")
                chunks, size = [], 0
                for chunk in response.iter_bytes():
                    size += len(chunk)
                    if size > self.max_response_bytes:
                        raise MinerClientError(f"{who}: GET {url}: more than {self.max_response_bytes} bytes")
                    chunks.append(chunk)
                return b"".join(chunks)
        except httpx.TimeoutException as exc:
            raise MinerClientError(f"{who}: GET {url}: timeout") from exc
        except httpx.HTTPError as exc:
            raise MinerClientError(f"{who}: GET {url}: {type(exc).__name__}: {exc}") from exc

    def fetch_verified_store(self, base_url: str, miner_hotkey: str, job_id: str, dest: Path,
                             time_indices: Sequence[int] | None = None) -> VerifiedStore:
        """Mirror a completed forecast store under ``dest``, verifying as it reads.

        Order (GAIA_SPEC 2): manifest hash, signer, signature; then the metadata and only the
        chunks of ``time_indices`` (all when None), each re-hashed against the manifest.
        """
        who = f"miner {miner_hotkey}, job {job_id}"
        answer = self.kerchunk(base_url, miner_hotkey, job_id)
        if answer.status != "completed" or not answer.zarr_store_url or not answer.access_token:
            raise MinerClientError(f"{who}: forecast not available ({answer.status}: {answer.message})")
        store_url = answer.zarr_store_url.rstrip("/")
        if not same_origin(store_url, base_url):
            raise ManifestError(f"store URL {store_url} is not on the miner's registered endpoint {base_url}")
        with httpx.Client(timeout=self.timeout, follow_redirects=False) as client:
            manifest_bytes = self._get(client, f"{store_url}/{MANIFEST_FILE}", answer.access_token, who)
            signature = self._get(client, f"{store_url}/{SIGNATURE_FILE}", answer.access_token, who)
            manifest = parse_and_verify_manifest(manifest_bytes, answer.verification_hash, miner_hotkey)
            if not verify_manifest_signature(manifest_bytes, signature.decode("ascii", "replace"), miner_hotkey):
                raise ManifestError(f"manifest signature is not {miner_hotkey}'s")
            dest.mkdir(parents=True, exist_ok=True)
            files = sorted(manifest["files"])
            metadata = [f for f in files if is_metadata(f)]
            total = self._mirror(client, store_url, answer.access_token, manifest, metadata, dest, who)
            zmetadata = dest / ".zmetadata"
            arrays = describe_arrays(zmetadata.read_bytes()) if zmetadata.exists() else {}
            chunks = select_chunks([f for f in files if not is_metadata(f)], arrays, time_indices)
            total += self._mirror(client, store_url, answer.access_token, manifest, chunks, dest, who)
        return VerifiedStore(dest, answer.verification_hash or "", len(metadata) + len(chunks), total, store_url)

    def _mirror(self, client: httpx.Client, store_url: str, token: str, manifest: dict, files: list[str],
                dest: Path, who: str) -> int:
        def fetch(rel: str) -> int:
            data = self._get(client, f"{store_url}/{rel}", token, who)
            verify_file(manifest, rel, data)
            target = dest / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(data)
            return len(data)

        with ThreadPoolExecutor(self.fetch_workers) as pool:
            return sum(pool.map(fetch, files))


def is_metadata(rel: str) -> bool:
    return rel.rsplit("/", 1)[-1] in METADATA_NAMES


def select_chunks(files: Sequence[str], arrays: dict[str, dict], time_indices: Sequence[int] | None) -> list[str]:
    """Every chunk of arrays without a time dim (coordinates) and the chunks of time-dimensioned
    arrays that cover one of ``time_indices`` (all chunks when None)."""
    if time_indices is None:
        return list(files)
    wanted = set(time_indices)
    selected = []
    for rel in files:
        array, _, name = rel.rpartition("/")
        info = arrays.get(array)
        if info is None or "time" not in info["dims"] or array == "time":
            selected.append(rel)
            continue
        axis = info["dims"].index("time")
        step = info["chunks"][axis]
        try:
            index = int(name.split(info["separator"])[axis])
        except (ValueError, IndexError):
            selected.append(rel)
            continue
        if any(index * step <= t < (index + 1) * step for t in wanted):
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
            arrays[name] = {"dims": attrs.get("_ARRAY_DIMENSIONS", []), "chunks": value["chunks"],
                            "separator": value.get("dimension_separator", ".")}
    return arrays

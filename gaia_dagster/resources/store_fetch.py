"""Fetching a miner's forecast store (GAIA_SPEC section 2): the verified mirror of its files.

The validator asks the miner (through ``MinerClient.kerchunk``) where its store is, reads and
verifies the signed manifest, then mirrors the metadata and the chunks a stage needs, each file
re-hashed against the manifest before it is written. Failures raise ``ManifestError`` (the miner's
fault) or ``MinerClientError`` (transport), naming the miner and the job.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Collection, Mapping, Sequence

import httpx

from gaia_dagster.core.contract import Grid
from gaia_dagster.core.manifest import (
    MANIFEST_FILE, SIGNATURE_FILE, STORE_CHANGED, ManifestError, PinnedManifest, StoreChanged,
    parse_and_verify_manifest, verify_file,
)
from gaia_dagster.core.signing import verify_manifest_signature
from gaia_dagster.core.urls import store_url_of, store_url_problem
from gaia_dagster.core.states import MinerJobStatus
from gaia_dagster.core.store_limits import (
    MAX_MANIFEST_BYTES, MAX_SIGNATURE_BYTES, ArraySpec, StoreRefused, check_manifest_size,
)
from gaia_dagster.resources.store_reader import (
    BoundedFiles, BoundedStore, FetchLimits, is_safe_relpath,
)
from gaia_dagster.resources.miner_client import (
    IDENTITY, KerchunkResult, MinerClientError, _refuse_compressed, _transport_error,
)

if TYPE_CHECKING:
    from gaia_dagster.resources.miner_client import MinerClient

# A keep-alive connection can break under a GET: closed by the miner between two requests, or by the
# client's own pool under load (it can close an idle connection just handed to another thread, and
# the read then fails with EBADF). The file is asked for again, once, on another connection.
RECONNECT_ERRORS = (httpx.ReadError, httpx.WriteError, httpx.RemoteProtocolError)

@dataclass(frozen=True)
class VerifiedStore:
    """A local mirror of (part of) a miner's store whose every file matched the signed manifest."""

    path: Path
    manifest_hash: str
    files_fetched: int
    bytes_fetched: int
    zarr_store_url: str = ""
    files: Mapping[str, str] | None = None  # the verified manifest's {relpath: digest}


class _StoreReader(BoundedFiles):
    """The GETs of one stage fetch (``store_reader.BoundedFiles``): bearer token, uncompressed
    answers, a cap per file, the stage's byte budget and deadline. A file over its cap or the budget
    is the miner's fault (``StoreRefused``); a transport error or the deadline passing is a
    ``MinerClientError`` (retried). Each GET goes straight to the transport the client would pick
    for the store's URL (its TLS, proxy and pool settings): no cookies, no auth, never a redirect
    followed, the client's per-request machinery (a few hundred GETs a stage) skipped."""

    def __init__(self, client: "MinerClient", http: httpx.Client, base_url: str, store_url: str, token: str,
                 who: str, limits: FetchLimits):
        super().__init__(limits, who)
        self.client, self.base_url, self.store_url = client, base_url, store_url
        self.transport = http._transport_for_url(httpx.URL(store_url))
        self.headers = http.headers.copy()   # the client's own, as its requests carry them
        self.headers.update({"Authorization": f"Bearer {token}", **IDENTITY})

    def get(self, rel: str, cap: int) -> bytes:
        """GET one store file, refusing more than ``cap`` bytes or an answer past the deadline. A
        GET whose connection broke under it (``RECONNECT_ERRORS``) is asked once more on a new
        connection of its own (the pool's other kept-alive connections may be as stale) before it
        counts against the miner."""
        url = f"{self.store_url}/{rel}"
        with self._lock:
            self.files_asked += 1
        try:
            return self._ask(self.transport, url, rel, cap, again=False)
        except RECONNECT_ERRORS:
            with self.client._client(self.base_url) as fresh:
                return self._ask(fresh._transport_for_url(httpx.URL(url)), url, rel, cap, again=True)

    def _ask(self, transport: httpx.BaseTransport, url: str, rel: str, cap: int, again: bool) -> bytes:
        """One GET of a store file through ``transport``; a broken connection is raised as is the
        first time (``again`` False), as the miner's transport error the second."""
        self.check_time()
        now = time.monotonic()
        left, slow_left = self.deadline - now, self.slow_at() - now
        wait = min(left, slow_left)
        timeout = httpx.Timeout(min(self.client.timeout.read or wait, wait),
                                connect=min(self.client.timeout.connect or wait, wait))
        try:
            request = httpx.Request("GET", url, headers=self.headers, extensions={"timeout": timeout.as_dict()})
            response = transport.handle_request(request)
            response.request = request
            try:
                if response.status_code != 200:
                    raise MinerClientError(f"{self.who}: GET {url}: HTTP {response.status_code}")
                _refuse_compressed(response, f"{self.who}: GET {url}")
                return self._read(response, rel, cap)
            finally:
                response.close()
        except RECONNECT_ERRORS as exc:
            if not again:
                raise
            raise _transport_error(f"{self.who}: GET {url} (asked twice)", exc) from exc
        except httpx.TimeoutException as exc:
            if slow_left < left and slow_left <= (self.client.timeout.read or slow_left):
                raise self.slow() from exc   # the fast lane's floor timed the wait out, not the miner's deadline
            raise _transport_error(f"{self.who}: GET {url}", exc) from exc
        except httpx.HTTPError as exc:
            raise _transport_error(f"{self.who}: GET {url}", exc) from exc

    def _read(self, response: httpx.Response, rel: str, cap: int) -> bytes:
        declared = response.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > cap:
            raise StoreRefused(f"{rel} is {declared} bytes, more than the {cap} allowed for it")
        body = bytearray()
        for piece in response.iter_raw():
            body.extend(piece)
            self.spend(len(piece))
            if len(body) > cap:
                raise StoreRefused(f"{rel} is more than the {cap} bytes allowed for it")
            self.check_time()
        return bytes(body)

    def late(self) -> MinerClientError:
        return MinerClientError(f"{self.who}: timeout, the store fetch did not finish within its "
                                f"{self.limits.deadline_s:g} s deadline")


def _verified_manifest(reader: _StoreReader, answer: KerchunkResult, miner_hotkey: str) -> dict:
    """Manifest rule, in order: its size, the hash, the signer, the file count, the signature
    (hex or 64 raw bytes), and every path inside the store."""
    manifest_bytes = reader.get(MANIFEST_FILE, MAX_MANIFEST_BYTES)
    signature = reader.get(SIGNATURE_FILE, MAX_SIGNATURE_BYTES)
    manifest = parse_and_verify_manifest(manifest_bytes, answer.verification_hash, miner_hotkey)
    check_manifest_size(manifest["files"])
    if not verify_manifest_signature(manifest_bytes, signature, miner_hotkey):
        raise ManifestError(f"manifest.sig is not {miner_hotkey}'s signature of the manifest")
    for rel, digest in manifest["files"].items():
        if not is_safe_relpath(rel):
            raise ManifestError(f"manifest lists an unsafe path {rel[:200]!r}")
        if not isinstance(digest, str):
            raise ManifestError(f"manifest gives {rel[:200]!r} a digest that is not a string")
    return manifest


def fetch_verified_store(client: "MinerClient", base_url: str, miner_hotkey: str, job_id: str, dest: Path,
                         time_indices: Sequence[int] | None = None,
                         run_start: datetime | None = None,
                         pinned: PinnedManifest | None = None,
                         grid: Grid | None = None,
                         limits: FetchLimits | None = None,
                         planes: Collection[tuple[str, tuple[int, ...]]] = ()) -> VerifiedStore:
    """Mirror a completed forecast store under ``dest``, bounded by the contract and verified as it reads.

    Order (GAIA_SPEC 2, issue 10): store URL joined to and on the miner's endpoint (SSRF guard);
    manifest size, hash, signer, file count, signature; freeze window when ``run_start`` is given;
    the consolidated metadata, bounded by the contract (``core.store_limits``: codecs, dtypes,
    shapes and chunks of ``grid``, no junk files) before any chunk is read; then only the chunks
    covering ``time_indices`` (all when None) and the ``planes`` named, each re-hashed against the manifest and decoded
    within its declared size before it is written. The whole fetch has ``limits`` (deadline, bytes).
    The mirror opens with ``xr.open_zarr(dest, consolidated=True)``.

    With ``pinned`` (the manifest frozen at verification), the manifest served now must be the
    frozen one (same hash) and every file is checked against the frozen digests; otherwise
    ``StoreChanged`` ("store changed after freeze"). The freeze window is not checked again then.

    Whatever goes wrong while handling the store (a limit, a codec error, MemoryError,
    RecursionError, UnicodeError, OSError...) is this miner's ``ManifestError``, named; transport
    errors and the deadline are ``MinerClientError``.
    """
    who = f"miner {miner_hotkey}, job {job_id}"
    answer = client.kerchunk(base_url, miner_hotkey, job_id)
    if answer.status != MinerJobStatus.COMPLETED.value or not answer.zarr_store_url or not answer.access_token:
        raise MinerClientError(f"{who}: forecast not available ({answer.status}: {answer.message})")
    problem = store_url_problem(answer.zarr_store_url, base_url)
    if problem:
        raise ManifestError(f"{who}: {problem}")
    store_url = store_url_of(answer.zarr_store_url, base_url)
    try:
        with client._client(base_url) as http:
            reader = _StoreReader(client, http, base_url, store_url, answer.access_token, who, limits or FetchLimits())
            return _fetch(reader, answer, miner_hotkey, dest, time_indices, run_start, pinned, grid, planes)
    except MinerClientError:
        raise
    except ManifestError as exc:
        raise type(exc)(f"{who}: {exc}") from exc
    except StoreRefused as exc:
        raise ManifestError(f"{who}: {exc}") from exc
    except Exception as exc:  # noqa: BLE001 - isolation rule: one miner's store fails only that miner
        raise ManifestError(f"{who}: {type(exc).__name__} while reading the store: {str(exc)[:300]}") from exc


def _fetch(reader: _StoreReader, answer: KerchunkResult, miner_hotkey: str, dest: Path,
           time_indices: Sequence[int] | None, run_start: datetime | None, pinned: PinnedManifest | None,
           grid: Grid | None, planes: Collection[tuple[str, tuple[int, ...]]] = ()) -> VerifiedStore:
    manifest = _verified_manifest(reader, answer, miner_hotkey)
    if pinned is not None:
        if answer.verification_hash != pinned.manifest_hash:
            raise StoreChanged(f"{STORE_CHANGED}: the manifest now served hashes to "
                               f"{answer.verification_hash}, the frozen one to {pinned.manifest_hash}")
        manifest = {**manifest, "files": dict(pinned.files)}
    else:
        _check_freeze_window(reader.client, run_start)
    try:
        store = BoundedStore(reader, manifest["files"], grid, verify=lambda rel, data: verify_file(manifest, rel, data))
        dest.mkdir(parents=True, exist_ok=True)
        for rel, data in store.root.items():
            (dest / rel).write_bytes(data)
        metadata, chunks = store.metadata_files(), select_chunks(store.kinds, time_indices, planes)
        store.plan(metadata + chunks)
        total = sum(len(d) for d in store.root.values())
        _make_folders(dest, metadata + chunks)
        total += store.read_all(metadata + chunks, reader.client.fetch_workers, lambda rel, data: _write(dest, rel, data))
    except ManifestError as exc:
        if pinned is None or isinstance(exc, StoreChanged):
            raise
        raise StoreChanged(f"{STORE_CHANGED}: {exc}") from exc
    return VerifiedStore(dest, answer.verification_hash or "", len(store.root) + len(metadata) + len(chunks), total,
                         reader.store_url, dict(manifest["files"]))


def _check_freeze_window(client: "MinerClient", run_start: datetime | None) -> None:
    """Freeze rule: a manifest must arrive within ``freeze_window`` of the run start."""
    if run_start is None:
        return
    start = run_start.replace(tzinfo=timezone.utc) if run_start.tzinfo is None else run_start
    now = datetime.now(timezone.utc)
    if now > start + client.freeze_window:
        raise ManifestError(f"manifest read at {now.isoformat()}, after the freeze window "
                            f"that closed at {(start + client.freeze_window).isoformat()}")


def _make_folders(dest: Path, rels: Sequence[str]) -> None:
    """The folders the mirror's files go in, each made once before any file is written."""
    for folder in sorted({os.path.dirname(rel) for rel in rels} - {""}):
        (dest / folder).mkdir(parents=True, exist_ok=True)


def _write(dest: Path, rel: str, data: bytes) -> None:
    """Write one verified file of the mirror (its folder made by ``_make_folders``)."""
    with open(os.path.join(dest, rel), "wb") as handle:
        handle.write(data)


def select_chunks(kinds: Mapping[str, ArraySpec | None], time_indices: Sequence[int] | None,
                  planes: Collection[tuple[str, tuple[int, ...]]] = ()) -> list[str]:
    """Chunk-selection rule: every chunk of arrays without a time dim (coordinates, and ``time``
    itself), the chunks of time-dimensioned arrays that cover one of ``time_indices`` (all
    chunks when None), and those of ``planes`` ((array, leading chunk indices), e.g.
    ``("t", (4, 7))``: time step 4, level 7); metadata files (spec None) are not chunks."""
    wanted = None if time_indices is None else {int(t) for t in time_indices}
    named = set(planes)
    selected = []
    covering: dict[str, tuple[int, set[int]]] = {}   # per array: its time axis, the chunks along it that cover ``wanted``
    for rel, spec in sorted(kinds.items()):
        if spec is None:
            continue
        if wanted is None or spec.name == "time" or "time" not in spec.dims:
            selected.append(rel)
            continue
        if spec.name not in covering:
            axis = spec.dims.index("time")
            covering[spec.name] = (axis, {t // spec.chunks[axis] for t in wanted if t >= 0})
        axis, chunks = covering[spec.name]
        index = _chunk_index(spec, rel)
        if (spec.name, index[:-2]) in named or index[axis] in chunks:
            selected.append(rel)
    return selected


def _chunk_index(spec: ArraySpec, rel: str) -> tuple[int, ...]:
    """The grid index of a chunk path of ``spec`` (``classify_files`` vouched for its form)."""
    key = rel[len(spec.name) + 1:]
    parts = key.split(spec.separator)
    return tuple(int(p) for p in (parts[1:] if spec.key_prefix else parts))

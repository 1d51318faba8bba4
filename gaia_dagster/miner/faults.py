"""Fault injection for the reference miner: one broken behaviour per ``MinerSettings.fault``.

A fault miner is an otherwise ordinary reference miner (same profile, keys, transport checks) that
misbehaves in exactly one way, so a validator can be driven against it over real HTTP:

- API faults (the JSON endpoints answer badly): ``timeout``, ``http500``, ``malformed_json``,
  ``wrong_schema``, ``oversized``, ``slow_drip``;
- store faults (the forecast it serves is bad): ``wrong_grid``, ``nan_inf``, ``hash_mismatch``,
  ``bad_signature``, ``tampered_chunk``;
- hostile stores, each correctly signed by the miner (issue 10): ``swap_after_freeze`` serves its
  store to the first kerchunk request (the validator's verification) and another signed store to
  every later one; ``copier`` re-signs as its own the good forecast of the miner ``fault_copy_of``,
  and its variants (``COPIER_FAULTS``, issue 18) disguise the copy: ``copier_noise`` (relative noise
  of 1e-6 on every value), ``copier_recompress`` (zstd instead of blosc), ``copier_rechunk`` (nested
  chunk keys, the lon coordinate in 4 chunks), ``copier_reorder`` (latitudes ascending, variables
  listed in reverse order);
- hostile stores bounded by the contract (issue 10), each correctly signed: ``compression_bomb``
  (a ~100 KB zstd chunk expanding to 2.5 GiB), ``shape_bomb`` (``lat`` declared 2^28 points),
  ``huge_manifest`` (700,000 junk entries), ``pickle_codec`` (a pickle filter), ``object_dtype``,
  ``junk_files`` (files listed in the manifest that belong to no array);
- ``gone_mid_job``: accepts the job, then never answers again;
- ``store_503_after_verify``: serves its store to the first kerchunk request (the validator's
  verification), then answers every store file HTTP 503 (``count``: after the first N);
- ``slow_store``: an honest forecast on a slow link: every store file (``count``: the first N) is
  answered after ``fault_delay_s`` (legal: the whole store reads inside the fetch deadline);
- poll faults (issue 10: only ``/weather-poll-job-status`` answers badly, so the job is in flight):
  ``poll_nested_json``, ``poll_drip``, ``poll_huge``, ``poll_http500``, ``poll_not_found``, ``poll_bad_utf8``.

``fault_count`` limits an API fault to the first N requests (a transient fault; None = always).
"""

from __future__ import annotations

import asyncio
import json
import os
import threading
from functools import lru_cache
from pathlib import Path
from typing import AsyncIterator

import numpy as np
import xarray as xr
from fastapi.responses import JSONResponse, Response, StreamingResponse

from gaia_dagster.core.states import MinerJobStatus

FAULTS: dict[str, str] = {
    "timeout": "the JSON endpoints hold the request open and never answer in time",
    "http500": "the JSON endpoints answer HTTP 500",
    "malformed_json": "the JSON endpoints answer HTTP 200 with a body that is not JSON",
    "wrong_schema": "the JSON endpoints answer a JSON object without the required fields",
    "oversized": "the JSON endpoints answer a body larger than any sane client cap",
    "slow_drip": "the JSON endpoints trickle their body one byte at a time, never finishing in time",
    "poll_nested_json": "the poll answer is ~200 KB of JSON arrays nested 100,000 deep",
    "poll_drip": "the poll answer trickles one byte at a time, never finishing in time",
    "poll_huge": "the poll answer is larger than any sane client cap",
    "poll_http500": "the poll answers HTTP 500",
    "poll_not_found": "the poll answers status not_found (the miner lost the job)",
    "poll_bad_utf8": "the poll answer is HTTP 200 with bytes that are not UTF-8",
    "wrong_grid": "the store is on a coarser lat/lon grid than the miner's configured resolution",
    "nan_inf": "the store's fields are mostly NaN with some +/-Inf (beyond the coverage limit)",
    "hash_mismatch": "the claimed verification hash differs from the manifest's",
    "bad_signature": "manifest.sig is signed by another key than the miner's hotkey",
    "tampered_chunk": "data chunks of lead 12 h are altered after the manifest was written",
    "gone_mid_job": "the miner accepts the job, then never answers any request again",
    "store_503_after_verify": "after the first kerchunk answer (verification), every store file answers HTTP 503",
    "slow_store": "every store file is answered only after fault_delay_s (slow but legal: within the fetch deadline)",
    "swap_after_freeze": "after the first kerchunk answer, a different correctly signed store is served",
    "copier": "the store is another miner's (fault_copy_of) good forecast, re-signed with this miner's hotkey",
    "copier_noise": "the copied forecast (fault_copy_of) with relative noise of 1e-6 on every value",
    "copier_recompress": "the copied forecast (fault_copy_of) with every data array recompressed with zstd",
    "copier_rechunk": "the copied forecast (fault_copy_of) with nested chunk keys and the lon coordinate in 4 chunks",
    "copier_reorder": "the copied forecast (fault_copy_of) with latitudes ascending and the variables reordered",
    "compression_bomb": "2t is zstd-compressed and its lead-12 h chunk is ~100 KB expanding to 2.5 GiB",
    "shape_bomb": "the metadata declares a lat coordinate of 2^28 points (and holds no data for it)",
    "huge_manifest": "the signed manifest lists 700,000 junk files besides the store's own",
    "pickle_codec": "2t is stored through a pickle filter (decoding it would run the miner's code)",
    "object_dtype": "2t declares the object dtype",
    "junk_files": "the store holds, and the manifest lists, 64 junk files of 256 KiB that belong to no array",
}
API_FAULTS = frozenset({"timeout", "http500", "malformed_json", "wrong_schema", "oversized", "slow_drip"})
POLL_FAULTS = frozenset({"poll_nested_json", "poll_drip", "poll_huge", "poll_http500", "poll_not_found",
                         "poll_bad_utf8"})
POLL_PATH = "/weather-poll-job-status"
NESTING = 100_000  # poll_nested_json: 100,000 '[' then 100,000 ']' (~200 KB)
HOSTILE_STORES = frozenset({"compression_bomb", "shape_bomb", "huge_manifest", "pickle_codec", "object_dtype",
                            "junk_files"})
COPIER_FAULTS = frozenset({"copier", "copier_noise", "copier_recompress", "copier_rechunk", "copier_reorder"})
STORE_FAULTS = frozenset({"wrong_grid", "nan_inf", "hash_mismatch", "bad_signature", "tampered_chunk",
                          "swap_after_freeze"}) | COPIER_FAULTS | HOSTILE_STORES
COPY_NOISE = 1e-6
COPY_LON_CHUNKS = 4
BOMB_FRAME_BYTES = 64 * 1024 * 1024
BOMB_FRAMES = 40   # 40 x 64 MiB = 2.5 GiB once decoded
SHAPE_BOMB_POINTS = 2 ** 28
HUGE_MANIFEST_ENTRIES = 700_000
JUNK_FILES, JUNK_FILE_BYTES = 64, 256 * 1024
SWAP_PROFILE = "clone"  # what ``swap_after_freeze`` serves once verified: another profile's forecast
COORD_ARRAYS = ("time", "pressure_level", "lat", "lon")
DRIP_INTERVAL_S = 0.1
WRONG_GRID_FACTOR = 1.5
NAN_FRACTION = 0.95
INF_FRACTION = 0.02
TAMPERED_TIME_INDEX = 1  # lead 12 h, the day-1 lead


def fault_names() -> tuple[str, ...]:
    return tuple(FAULTS)


def check_fault(fault: str | None) -> None:
    """Reject an unknown fault name up front."""
    if fault is not None and fault not in FAULTS:
        raise ValueError(f"unknown fault {fault!r} (expected one of {fault_names()})")


class FaultState:
    """The running fault of one miner: how many requests it has hit and whether the miner is gone."""

    def __init__(self, fault: str | None, count: int | None, delay_s: float, size_bytes: int):
        self.fault = fault
        self.count = count
        self.delay_s = delay_s
        self.size_bytes = size_bytes
        self.hits = 0
        self.store_answers = 0
        self.gone = False
        self._lock = threading.Lock()

    def api_fault_due(self, path: str = "") -> bool:
        """True when this request gets the API fault (consumes one of ``count``); a poll fault hits
        only requests for ``POLL_PATH``."""
        if self.fault not in API_FAULTS and not (self.fault in POLL_FAULTS and path == POLL_PATH):
            return False
        with self._lock:
            if self.count is not None and self.hits >= self.count:
                return False
            self.hits += 1
            return True

    def served_store_rel(self, rel: str) -> str:
        """``swap_after_freeze``: the first store answer (or the first ``count``: verification and
        day-1, to swap at ERA5 time) names the store, every later one the swap."""
        if self.fault not in ("swap_after_freeze", "store_503_after_verify"):
            return rel
        with self._lock:
            self.store_answers += 1
            if self.fault != "swap_after_freeze":
                return rel
            return rel if self.store_answers <= (self.count or 1) else swapped_rel(rel)

    def store_withheld(self) -> bool:
        """``store_503_after_verify``: True once more store answers were given than ``count`` (1; 0:
        the store is never served, verification included)."""
        return self.fault == "store_503_after_verify" and self.store_answers > (1 if self.count is None else self.count)

    def store_delay_s(self) -> float:
        """``slow_store``: how long this store file's answer waits: ``delay_s`` for each of the first
        ``count`` files (every file when None), 0 after them and for every other fault."""
        if self.fault != "slow_store":
            return 0.0
        with self._lock:
            self.store_answers += 1
            return self.delay_s if self.count is None or self.store_answers <= self.count else 0.0

    def after_answer(self, answer: dict) -> None:
        """``gone_mid_job``: once a job is accepted the miner disappears."""
        if self.fault == "gone_mid_job" and answer.get("status") in (MinerJobStatus.FETCH_ACCEPTED.value, MinerJobStatus.COMPLETED.value):
            self.gone = True


async def hang(seconds: float) -> Response:
    """Hold the request open (a client with a shorter timeout gives up first)."""
    await asyncio.sleep(seconds)
    return Response(status_code=503)


async def _drip(seconds: float) -> AsyncIterator[bytes]:
    """One space every ``DRIP_INTERVAL_S`` for ``seconds``, then a JSON object (never valid in time)."""
    loop = asyncio.get_running_loop()
    end = loop.time() + seconds
    while loop.time() < end:
        yield b" "
        await asyncio.sleep(DRIP_INTERVAL_S)
    yield b"{}"


async def _oversized(size: int, hotkey: str) -> AsyncIterator[bytes]:
    """A syntactically valid JSON answer padded to ``size`` bytes (streamed, no content-length)."""
    head = b'{"status": "fetch_accepted", "message": "' + f"miner {hotkey}".encode() + b'", "padding": "'
    yield head
    block = b"x" * 65536
    sent = len(head)
    while sent < size:
        yield block
        sent += len(block)
    yield b'"}'


def api_fault_response(fault: FaultState, hotkey: str, path: str) -> Response:
    """The broken answer of an API fault to a request for ``path``."""
    name = fault.fault
    if name in POLL_FAULTS:
        return poll_fault_response(fault, hotkey, path)
    if name == "http500":
        return JSONResponse({"detail": f"miner {hotkey}: internal error on {path} (injected fault http500)"}, 500)
    if name == "malformed_json":
        return Response(b'{"status": "fetch_accepted", "job_id": <not json', 200, media_type="application/json")
    if name == "wrong_schema":
        return JSONResponse({"ok": True, "result": "accepted", "miner": hotkey})
    if name == "oversized":
        return StreamingResponse(_oversized(fault.size_bytes, hotkey), media_type="application/json")
    if name == "slow_drip":
        return StreamingResponse(_drip(fault.delay_s), media_type="application/json")
    raise ValueError(f"{name!r} is not an API fault")


def poll_fault_response(fault: FaultState, hotkey: str, path: str) -> Response:
    """The broken answer of a poll fault (the drip, huge and 500 ones as their API counterparts)."""
    name = fault.fault
    if name == "poll_nested_json":
        return Response(b'{"status": ' + b"[" * NESTING + b"]" * NESTING + b"}", 200, media_type="application/json")
    if name == "poll_bad_utf8":
        return Response(b'{"status": "running_inference", "message": "\xff\xfe\xc3("}', 200,
                        media_type="application/json")
    if name == "poll_not_found":
        return JSONResponse({"status": MinerJobStatus.NOT_FOUND.value, "job_id": None, "message": f"miner {hotkey} has no such job"})
    standin = {"poll_drip": "slow_drip", "poll_huge": "oversized", "poll_http500": "http500"}[name]
    return api_fault_response(FaultState(standin, None, fault.delay_s, fault.size_bytes), hotkey, path)


# -- store faults ----------------------------------------------------------------------------------
def swapped_rel(rel: str) -> str:
    """Where ``swap_after_freeze`` keeps the store it serves after verification."""
    return rel.removesuffix(".zarr") + ".swapped.zarr"


def forecast_member(fault: str | None, hotkey: str, copy_of: str | None) -> str:
    """A copier (``COPIER_FAULTS``): the forecast drawn as the copied miner's; else the miner's own."""
    if fault in COPIER_FAULTS:
        if not copy_of:
            raise ValueError("the copier fault needs fault_copy_of (the hotkey of the miner it copies)")
        return copy_of
    return hotkey


def store_resolution(fault: str | None, resolution: float) -> float:
    """``wrong_grid`` writes the store on a coarser grid than the validator expects."""
    return resolution * WRONG_GRID_FACTOR if fault == "wrong_grid" else resolution


def corrupt_step(fault: str | None, step: xr.Dataset) -> xr.Dataset:
    """``nan_inf``: most values NaN and some +/-Inf in every field (deterministic pattern);
    ``copier_noise``: every value times (1 + 1e-6 x standard normal noise)."""
    if fault == "copier_noise":
        rng = np.random.default_rng(0)
        return step.map(lambda da: da * (1 + COPY_NOISE * rng.standard_normal(da.shape)).astype(np.float32))
    if fault != "nan_inf":
        return step
    out = step.copy()
    for name, da in step.data_vars.items():
        values = np.array(da.values, dtype=np.float32)
        flat = values.reshape(-1)
        n = flat.size
        flat[: int(n * NAN_FRACTION)] = np.nan
        inf_end = min(n, int(n * (NAN_FRACTION + INF_FRACTION)) + 1)
        flat[int(n * NAN_FRACTION): inf_end] = np.inf
        flat[inf_end - 1] = -np.inf
        out[name] = da.copy(data=values)
    return out


def claimed_hash(fault: str | None, verification_hash: str | None) -> str | None:
    """``hash_mismatch``: the hash the miner claims differs from its manifest's."""
    if fault != "hash_mismatch" or not verification_hash:
        return verification_hash
    first = "0" if verification_hash[0] != "0" else "1"
    return first + verification_hash[1:]


def after_manifest(fault: str | None, store: Path, hotkey_uri: str) -> None:
    """Break a finished store: re-sign with another key, or alter chunks the manifest covers."""
    if fault == "bad_signature":
        from gaia_dagster.core.manifest import MANIFEST_FILE, SIGNATURE_FILE
        from gaia_dagster.core.signing import keypair_from_uri, sign_manifest

        impostor = keypair_from_uri(f"{hotkey_uri}//impostor")
        (store / SIGNATURE_FILE).write_text(sign_manifest(impostor, (store / MANIFEST_FILE).read_bytes()))
    elif fault == "tampered_chunk":
        tampered = 0
        for array in sorted(p for p in store.iterdir() if p.is_dir() and p.name not in COORD_ARRAYS):
            for chunk in array.iterdir():
                if chunk.is_file() and chunk.name.split(".")[0] == str(TAMPERED_TIME_INDEX):
                    data = bytearray(chunk.read_bytes())
                    data[-1] ^= 0xFF
                    chunk.write_bytes(bytes(data))
                    tampered += 1
        if not tampered:
            raise RuntimeError(f"tampered_chunk: no chunk of time index {TAMPERED_TIME_INDEX} in {store}")


# -- hostile stores (issue 10): written before the manifest, so the miner signs them as its own -----
def _edit_array(store: Path, name: str, **changes) -> None:
    """Change an array's Zarr v2 metadata in its ``.zarray`` and in the consolidated ``.zmetadata``."""
    zarray = store / name / ".zarray"
    meta = {**json.loads(zarray.read_bytes()), **changes}
    zarray.write_text(json.dumps(meta, indent=2))
    consolidated = json.loads((store / ".zmetadata").read_bytes())
    consolidated["metadata"][f"{name}/.zarray"] = meta
    (store / ".zmetadata").write_text(json.dumps(consolidated, indent=2))


@lru_cache(maxsize=1)
def _zero_frame() -> bytes:
    """One zstd frame of ``BOMB_FRAME_BYTES`` zeros (~2 KB compressed), made once per process."""
    import numcodecs

    return bytes(numcodecs.Zstd(level=19).encode(np.zeros(BOMB_FRAME_BYTES, dtype=np.uint8)))


def _compression_bomb(store: Path) -> None:
    """2t recompressed with zstd; its lead-12 h chunk is its true plane followed by ``BOMB_FRAMES``
    frames of zeros: the first frame declares the right size, the whole expands to 2.5 GiB."""
    import numcodecs

    blosc, zstd = numcodecs.Blosc(), numcodecs.Zstd(level=1)
    _edit_array(store, "2t", compressor={"id": "zstd", "level": 1})
    for chunk in sorted(p for p in (store / "2t").iterdir() if not p.name.startswith(".")):
        plane = bytes(zstd.encode(blosc.decode(chunk.read_bytes())))
        if chunk.name.split(".")[0] == str(TAMPERED_TIME_INDEX):
            plane += _zero_frame() * BOMB_FRAMES
        chunk.write_bytes(plane)


def _chunk_files(store: Path, name: str) -> list[Path]:
    return sorted(p for p in (store / name).iterdir() if p.is_file() and not p.name.startswith("."))


def _data_arrays(store: Path) -> list[str]:
    return sorted(p.name for p in store.iterdir() if p.is_dir() and p.name not in COORD_ARRAYS)


def _rewrite_planes(store: Path, name: str, transform, codec=None) -> None:  # noqa: ANN001
    """Decode every chunk of an array, apply ``transform`` to its (..., lat, lon) values and encode
    it again (with ``codec``, default the store's blosc)."""
    import numcodecs

    blosc = numcodecs.Blosc()
    meta = json.loads((store / name / ".zarray").read_bytes())
    for chunk in _chunk_files(store, name):
        values = np.frombuffer(blosc.decode(chunk.read_bytes()), dtype=meta["dtype"]).reshape(meta["chunks"])
        chunk.write_bytes(bytes((codec or blosc).encode(np.ascontiguousarray(transform(values)))))


def _disguise_copy(fault: str, store: Path) -> None:
    """The copier variants that re-encode the copied store (``COPIER_FAULTS``)."""
    import numcodecs

    if fault == "copier_recompress":
        for name in _data_arrays(store):
            _rewrite_planes(store, name, lambda v: v, numcodecs.Zstd(level=3))
            _edit_array(store, name, compressor={"id": "zstd", "level": 3})
    elif fault == "copier_rechunk":
        for name in _data_arrays(store):
            _edit_array(store, name, dimension_separator="/")
            for chunk in _chunk_files(store, name):
                nested = store / name / chunk.name.replace(".", "/")
                nested.parent.mkdir(parents=True, exist_ok=True)
                chunk.rename(nested)
        blosc, meta = numcodecs.Blosc(), json.loads((store / "lon" / ".zarray").read_bytes())
        lon = np.frombuffer(blosc.decode((store / "lon" / "0").read_bytes()), dtype=meta["dtype"])
        for i, part in enumerate(np.split(lon, COPY_LON_CHUNKS)):
            (store / "lon" / str(i)).write_bytes(bytes(blosc.encode(np.ascontiguousarray(part))))
        _edit_array(store, "lon", chunks=[lon.size // COPY_LON_CHUNKS])
    elif fault == "copier_reorder":
        for name in [*_data_arrays(store), "lat"]:
            _rewrite_planes(store, name, lambda v: v[..., ::-1, :] if v.ndim > 1 else v[::-1])
        consolidated = json.loads((store / ".zmetadata").read_bytes())
        consolidated["metadata"] = dict(reversed(list(consolidated["metadata"].items())))
        (store / ".zmetadata").write_text(json.dumps(consolidated, indent=2))


def before_manifest(fault: str | None, store: Path) -> None:
    """Make the store hostile (``HOSTILE_STORES``) or disguise a copy (``COPIER_FAULTS``) before the
    miner writes and signs its manifest."""
    if fault in COPIER_FAULTS:
        _disguise_copy(fault, store)
    elif fault == "compression_bomb":
        _compression_bomb(store)
    elif fault == "shape_bomb":
        _edit_array(store, "lat", shape=[SHAPE_BOMB_POINTS], chunks=[SHAPE_BOMB_POINTS])
        for chunk in (store / "lat").iterdir():
            if not chunk.name.startswith("."):
                chunk.unlink()
    elif fault == "pickle_codec":
        _edit_array(store, "2t", compressor=None, filters=[{"id": "pickle", "protocol": 5}])
    elif fault == "object_dtype":
        _edit_array(store, "2t", dtype="|O")
    elif fault == "junk_files":
        for i in range(JUNK_FILES):
            junk = store / "junk" / f"blob_{i:04d}"
            junk.parent.mkdir(exist_ok=True)
            junk.write_bytes(os.urandom(JUNK_FILE_BYTES))


def manifest_junk_entries(fault: str | None) -> int:
    """``huge_manifest``: how many junk entries the signed manifest lists besides the store's files."""
    return HUGE_MANIFEST_ENTRIES if fault == "huge_manifest" else 0

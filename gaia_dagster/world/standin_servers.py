"""Loopback stand-ins for the production data services, speaking their real protocols.

- ``RangeServer``: a bucket over HTTP (NOAA's open-data bucket: GET with ``Range: bytes=a-b``,
  HEAD, 404 for a missing key), serving bytes or files (a Zarr store too: ``store_files``); every
  request is logged.
- ``CdsServer``: the Copernicus CDS API as ``cdsapi`` (its ``ecmwf-datastores-client``) speaks it:
  the ``PRIVATE-TOKEN`` key on every call, ``catalogue/v1/messages`` and ``collections/{id}`` (the
  temporal extent is the reach), ``retrieve/v1/processes/{id}/execution`` queues a job
  (``accepted``), a worker runs it (``running``) after ``queue_s``, then ``successful`` with
  ``jobs/{id}/results`` naming the file to download; ``DELETE jobs/{id}`` dismisses it. The file is
  ERA5 as GRIB1 built from an ARCO-ERA5-layout store for exactly the asked time, variables, levels.
"""

from __future__ import annotations

import json
import queue
import re
import shutil
import tempfile
import threading
import time
import uuid
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Callable, Mapping

import numpy as np
import xarray as xr

from gaia_dagster.world.standin_formats import LONG_NAMES, era5_grib


class _Server:
    """A threaded loopback HTTP server with a request log (method, path, Range header)."""

    def __init__(self, handler: type[BaseHTTPRequestHandler]):
        self.log: list[tuple[str, str, str | None]] = []
        handler.stand_in = self
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}"

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:  # noqa: ANN002
        self.httpd.shutdown()
        self.httpd.server_close()


class _Handler(BaseHTTPRequestHandler):
    stand_in: _Server
    protocol_version = "HTTP/1.1"

    def log_message(self, *args) -> None:  # noqa: ANN002 - quiet
        pass

    def send_body(self, status: int, body: bytes, content_type: str = "application/json",
                  headers: Mapping[str, str] | None = None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def send_json(self, status: int, document: object) -> None:
        self.send_body(status, json.dumps(document).encode())


def _read_span(blob: bytes | Path, start: int, end: int) -> bytes:
    if isinstance(blob, bytes):
        return blob[start:end + 1]
    with open(blob, "rb") as handle:
        handle.seek(start)
        return handle.read(end + 1 - start)


def serve_range(handler: _Handler, blob: bytes | Path) -> None:
    """Rule (S3 GET): the whole object, or one ``Range: bytes=a-b`` / ``bytes=a-`` span (206)."""
    size = len(blob) if isinstance(blob, bytes) else blob.stat().st_size
    rng = handler.headers.get("Range")
    start, end, status = 0, size - 1, 200
    if rng:
        m = re.fullmatch(r"bytes=(\d+)-(\d*)", rng.strip())
        start, end, status = int(m.group(1)), min(int(m.group(2)) if m.group(2) else size - 1, size - 1), 206
    extra = {"Accept-Ranges": "bytes"}
    if status == 206:
        extra["Content-Range"] = f"bytes {start}-{end}/{size}"
    body = b"" if handler.command == "HEAD" else _read_span(blob, start, end)
    if handler.command == "HEAD":
        handler.send_response(status)
        handler.send_header("Content-Length", str(end + 1 - start))
        for key, value in extra.items():
            handler.send_header(key, value)
        handler.end_headers()
        return
    handler.send_body(status, body, "application/octet-stream", extra)


class RangeServer(_Server):
    """A bucket: ``files`` maps a URL path (``/gfs.20240101/00/atmos/...``) to bytes or a file."""

    def __init__(self, files: dict[str, bytes | Path]):
        self.files = files

        class Handler(_Handler):
            def do_GET(self) -> None:  # noqa: N802
                server = self.stand_in
                server.log.append((self.command, self.path, self.headers.get("Range")))
                blob = server.files.get(self.path)
                if blob is None:
                    self.send_body(404, b"<Error><Code>NoSuchKey</Code></Error>", "application/xml")
                    return
                serve_range(self, blob)

            do_HEAD = do_GET  # noqa: N815

        super().__init__(Handler)


def store_files(store: Path, mount: str) -> dict[str, Path]:
    """A written Zarr store's files under the URL path ``/{mount}/...`` (for a ``RangeServer``: fsspec's
    HTTP filesystem reads it as it reads a bucket, a missing chunk being a 404)."""
    return {f"/{mount}/{p.relative_to(store).as_posix()}": p for p in Path(store).rglob("*") if p.is_file()}


class CdsServer(_Server):
    """The CDS API over an ARCO-ERA5-layout store (``era5_store``), for one ``key``; ``reach`` is the
    temporal extent's end (a callable, so a test can move it)."""

    def __exit__(self, *exc) -> None:  # noqa: ANN002
        super().__exit__(*exc)
        shutil.rmtree(self.files, ignore_errors=True)

    def __init__(self, era5_store: Path | str, key: str, reach: Callable[[], datetime], queue_s: float = 0.3):
        self.era5_store, self.key, self.reach, self.queue_s = str(era5_store), key, reach, queue_s
        self.jobs: dict[str, dict] = {}
        self.requests: list[tuple[str, dict]] = []
        self.lock = threading.Lock()
        self.files = Path(tempfile.mkdtemp(prefix="cds-standin-"))  # results live on disk until dismissed
        self.work: queue.Queue[str] = queue.Queue()
        self.worker = threading.Thread(target=self._run_jobs, daemon=True)
        self.worker.start()
        super().__init__(self._handler())

    def base(self) -> str:
        """The URL to give as ``CDSAPI_URL``."""
        return self.url + "/api"

    # -- the job queue ---------------------------------------------------------------------------
    def _run_jobs(self) -> None:
        """Rule (queued, then run): a job waits ``queue_s`` accepted, runs, then is successful or failed."""
        while True:
            job_id = self.work.get()
            time.sleep(self.queue_s)
            job = self.jobs[job_id]
            job["status"] = "running"
            try:
                result = self.files / f"{job_id}.grib"
                result.write_bytes(self._build(job["process"], job["inputs"]))
                job["file"], job["status"] = result, "successful"
            except Exception as exc:  # noqa: BLE001 - a failed job reports its reason
                job["status"], job["error"] = "failed", repr(exc)

    def _build(self, process: str, inputs: dict) -> bytes:
        """ERA5 GRIB1 for exactly the request's time, variables and levels."""
        names = {long: short for short, long in LONG_NAMES.items()}
        variables = [names[v] for v in inputs["variable"]]
        when = datetime(int(inputs["year"][0]), int(inputs["month"][0]), int(inputs["day"][0]),
                        int(inputs["time"][0][:2]), tzinfo=timezone.utc)
        if when > self.reach():
            raise ValueError(f"no data for {when.isoformat()}")
        levels = tuple(int(p) for p in inputs.get("pressure_level", []))
        with xr.open_zarr(self.era5_store, consolidated=True, chunks=None) as store:
            at = store.sel(time=np.datetime64(when.replace(tzinfo=None), "ns"))
            fields = {}
            for name in variables:
                array = at[LONG_NAMES[name]]
                if "level" in array.dims:
                    array = array.sel(level=list(levels)).rename(level="pressure_level")
                fields[name] = array.rename(latitude="lat", longitude="lon").load()
        return era5_grib(xr.Dataset(fields), variables, levels)

    # -- HTTP ------------------------------------------------------------------------------------
    def _handler(self) -> type[_Handler]:
        cds = self

        class Handler(_Handler):
            def _authorised(self) -> bool:
                if self.path.startswith("/download/"):
                    return True  # results are served by a signed-less storage URL, as the CDS does
                if self.headers.get("PRIVATE-TOKEN") != cds.key:
                    self.send_json(401, {"title": "Authentication failed", "detail": "invalid key"})
                    return False
                return True

            def _route(self) -> None:
                path = self.path.split("?")[0]
                cds.log.append((self.command, path, self.headers.get("Range")))
                if not self._authorised():
                    return
                for pattern, action in cds.routes():
                    m = re.fullmatch(pattern, f"{self.command} {path}")
                    if m:
                        action(self, *m.groups())
                        return
                self.send_json(404, {"title": "not found", "detail": path})

            do_GET = do_POST = do_DELETE = do_HEAD = _route  # noqa: N815

        return Handler

    def routes(self) -> list[tuple[str, Callable]]:
        return [
            (r"(?:GET|HEAD) /api/catalogue/v1/messages", lambda h: h.send_json(200, {"messages": []})),
            (r"(?:GET|HEAD) /api/catalogue/v1/collections/([\w-]+)", self._collection),
            (r"(?:GET|HEAD) /api/retrieve/v1/processes/([\w-]+)", self._process),
            (r"POST /api/retrieve/v1/processes/([\w-]+)/execution", self._submit),
            (r"(?:GET|HEAD) /api/retrieve/v1/jobs/([\w-]+)", self._job),
            (r"DELETE /api/retrieve/v1/jobs/([\w-]+)", self._dismiss),
            (r"(?:GET|HEAD) /api/retrieve/v1/jobs/([\w-]+)/results", self._results),
            (r"(?:GET|HEAD) /download/([\w-]+)\.grib", self._download),
        ]

    def _collection(self, h: _Handler, name: str) -> None:
        end = self.reach().astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
        h.send_json(200, {"id": name, "type": "Collection", "extent": {"temporal": {"interval": [
            ["1940-01-01T00:00:00Z", end]]}}, "links": []})

    def _process(self, h: _Handler, name: str) -> None:
        h.send_json(200, {"id": name, "links": [
            {"rel": "self", "href": f"{self.base()}/retrieve/v1/processes/{name}"}]})

    def _submit(self, h: _Handler, name: str) -> None:
        length = int(h.headers.get("Content-Length") or 0)
        inputs = json.loads(h.rfile.read(length))["inputs"]
        job_id = str(uuid.uuid4())
        with self.lock:
            self.jobs[job_id] = {"process": name, "inputs": inputs, "status": "accepted"}
            self.requests.append((name, inputs))
        self.work.put(job_id)
        h.send_json(201, {"jobID": job_id, "processID": name, "status": "accepted", "type": "process",
                          "links": [{"rel": "monitor", "href": f"{self.base()}/retrieve/v1/jobs/{job_id}"}]})

    def _job(self, h: _Handler, job_id: str) -> None:
        job = self.jobs.get(job_id)
        if job is None:
            h.send_json(404, {"title": "job not found"})
            return
        h.send_json(200, {"jobID": job_id, "processID": job["process"], "status": job["status"], "type": "process",
                          "metadata": {"request": {"ids": job["inputs"]}}, "links": [
                              {"rel": "self", "href": f"{self.base()}/retrieve/v1/jobs/{job_id}"},
                              {"rel": "results", "href": f"{self.base()}/retrieve/v1/jobs/{job_id}/results"}]})

    def _dismiss(self, h: _Handler, job_id: str) -> None:
        job = self.jobs.pop(job_id, None)
        if job and job.get("file"):
            job["file"].unlink(missing_ok=True)
        h.send_json(200 if job else 404, {"jobID": job_id, "status": "dismissed"})

    def _results(self, h: _Handler, job_id: str) -> None:
        job = self.jobs.get(job_id)
        if job is None or job["status"] not in ("successful", "failed"):
            h.send_json(404 if job is None else 400, {"title": "results not ready"})
        elif job["status"] == "failed":
            h.send_json(400, {"title": "The job has failed", "traceback": job["error"]})
        else:
            h.send_json(200, {"asset": {"value": {"type": "application/x-grib", "href": f"{self.url}/download/{job_id}.grib",
                                                  "file:size": job["file"].stat().st_size}}})

    def _download(self, h: _Handler, job_id: str) -> None:
        job = self.jobs.get(job_id)
        if job is None or "file" not in job:
            h.send_json(404, {"title": "not found"})
            return
        serve_range(h, job["file"])

"""A keep-alive connection that breaks under a store GET is not the miner's fault: the file is asked
for again, once, on another connection (resources/store_fetch.py, ``RECONNECT_ERRORS``).

The miner is the real reference miner on loopback; between it and the validator sits a TCP proxy
that closes a connection, without an answer, when it carries more store GETs than it allows (what a
miner's keep-alive timeout, or the client pool closing a connection it just handed out, looks like
to the request on it).
"""

from __future__ import annotations

import re
import socket
import threading
import time
from datetime import datetime, timezone

import pytest

from gaia_dagster.core.signing import keypair_from_uri
from gaia_dagster.fleet import free_port
from gaia_dagster.resources.miner_client import MinerClientError

from miner_server import running_miner, signed_client  # noqa: E402

T0 = datetime(2026, 10, 20, tzinfo=timezone.utc)
URI = "//gaia-store-reconnect"
HOTKEY = keypair_from_uri(URI).ss58_address
STORE_GET = re.compile(rb"GET /forecasts/[^ ]+\.zarr/")


class DroppingProxy:
    """A loopback TCP proxy that closes each connection, unanswered, at its store GET number
    ``allowed + 1`` (``allowed`` 0: every store GET is dropped)."""

    def __init__(self, port: int, allowed: int):
        self.port, self.allowed, self.upstream = port, allowed, None
        self.dropped = 0
        self.listener = socket.create_server(("127.0.0.1", port))
        self.lock = threading.Lock()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(client,), daemon=True).start()

    def _serve(self, client: socket.socket) -> None:
        upstream = socket.create_connection(self.upstream)
        threading.Thread(target=self._pump, args=(upstream, client), daemon=True).start()
        store_gets = 0
        try:
            while data := client.recv(65536):
                store_gets += len(STORE_GET.findall(data))
                if store_gets > self.allowed:
                    with self.lock:
                        self.dropped += 1
                    return
                upstream.sendall(data)
        except OSError:
            return
        finally:
            for sock in (client, upstream):
                try:
                    sock.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
                sock.close()

    @staticmethod
    def _pump(source: socket.socket, sink: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                sink.sendall(data)
        except OSError:
            pass

    def close(self) -> None:
        self.listener.close()


@pytest.fixture(scope="module")
def behind_proxy(tmp_path_factory):
    """A miner whose public URL is the proxy's: (proxy URL, proxy, client, job) once its T0
    forecast is done."""
    proxy = DroppingProxy(free_port(), allowed=3)
    url = f"http://127.0.0.1:{proxy.port}"
    with running_miner(tmp_path_factory.mktemp("miner"), hotkey_uri=URI, resolution=30.0,
                       public_base_url=url) as (base_url, _app):
        proxy.upstream = ("127.0.0.1", int(base_url.rsplit(":", 1)[1]))
        client = signed_client(read_timeout=10)
        job = client.initiate_fetch(url, HOTKEY, "validator-a", T0).job_id
        deadline = time.monotonic() + 120
        while client.poll_job(url, HOTKEY, job).status != "completed" and time.monotonic() < deadline:
            time.sleep(0.1)
        try:
            yield url, proxy, client, job
        finally:
            proxy.close()


def test_connections_broken_under_store_gets_do_not_fail_the_miner(behind_proxy, tmp_path):
    url, proxy, client, job = behind_proxy
    proxy.allowed, proxy.dropped = 3, 0
    store = client.fetch_verified_store(url, HOTKEY, job, tmp_path / "mirror", time_indices=None)
    assert proxy.dropped >= 5                     # connections really broke under GETs
    assert all((tmp_path / "mirror" / rel).is_file() for rel in store.files)


def test_a_store_that_breaks_every_connection_still_fails_naming_the_miner(behind_proxy, tmp_path):
    url, proxy, client, job = behind_proxy
    proxy.allowed, proxy.dropped = 0, 0
    with pytest.raises(MinerClientError, match=rf"miner {HOTKEY}, job {job}: GET .*asked twice"):
        client.fetch_verified_store(url, HOTKEY, job, tmp_path / "mirror", time_indices=None)
    assert proxy.dropped == 2                    # the manifest asked for twice, then given up

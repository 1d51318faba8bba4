"""A reference miner served by uvicorn in a background thread on a free loopback port (tests)."""

from __future__ import annotations

import threading
import time
from contextlib import contextmanager
from pathlib import Path

import uvicorn

from gaia_dagster.core.signing import keypair_from_uri
from gaia_dagster.resources.fiber_session import FiberSession
from gaia_dagster.fleet import free_port
from gaia_dagster.miner.app import MinerSettings, create_app
from gaia_dagster.resources.miner_client import MinerClient

TEST_VALIDATOR_URI = "//test-validator"
TEST_VALIDATOR_KEYPAIR = keypair_from_uri(TEST_VALIDATOR_URI)
TEST_VALIDATOR = TEST_VALIDATOR_KEYPAIR.ss58_address


def signed_client(keypair=TEST_VALIDATOR_KEYPAIR, **options) -> MinerClient:  # noqa: ANN001 - a Keypair
    """A ``MinerClient`` that speaks Fiber as the test validator (or ``keypair``): the wire default."""
    return MinerClient(fiber=FiberSession(keypair), **options)


@contextmanager
def running_miner(data_dir: Path, profile: str = "good", hotkey_uri: str = "//test-miner", resolution: float = 10.0,
                  allowed_validators: tuple[str, ...] | None = None, **settings):
    """Yield (base_url, app) while a real miner serves on loopback; it speaks Fiber and serves
    ``allowed_validators`` (None: a development miner, ``dev_open_access``, serving any signed hotkey)."""
    port = free_port()
    base_url = f"http://127.0.0.1:{port}"
    app = create_app(MinerSettings(hotkey_uri=hotkey_uri, profile=profile, data_dir=data_dir,
                                   resolution=resolution, allowed_validators=allowed_validators,
                                   **{"public_base_url": base_url, "dev_open_access": allowed_validators is None,
                                      **settings}))
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning",
                                           timeout_graceful_shutdown=1))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        if time.monotonic() > deadline:
            raise RuntimeError("test miner did not start")
        time.sleep(0.05)
    try:
        yield base_url, app
    finally:
        server.should_exit = True
        thread.join(timeout=60)


@contextmanager
def miner_process(data_dir: Path, port: int, hotkey_uri: str = "//test-miner", *args: str):
    """Yield the base URL while ``python -m gaia_dagster.miner`` serves on ``port`` as a real process
    (``args``: more command-line options, e.g. ``--allow-validator SS58``); killed (SIGKILL) on exit."""
    import subprocess
    import sys

    import httpx

    base_url = f"http://127.0.0.1:{port}"
    process = subprocess.Popen([sys.executable, "-m", "gaia_dagster.miner", "--host", "127.0.0.1", "--port", str(port),
                                "--hotkey-uri", hotkey_uri, "--data-dir", str(data_dir), "--resolution", "30",
                                *args], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 30
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"miner process exited {process.returncode}: {process.stderr.read().decode()[-2000:]}")
            try:
                if httpx.get(base_url + "/public-encryption-key", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError("miner process did not start")
            time.sleep(0.1)
        yield base_url
    finally:
        process.kill()
        process.wait()
        process.stderr.close()

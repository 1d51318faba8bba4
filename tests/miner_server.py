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
                                   resolution=resolution, public_base_url=base_url,
                                   allowed_validators=allowed_validators,
                                   **{"dev_open_access": allowed_validators is None, **settings}))
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

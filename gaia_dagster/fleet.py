"""A fleet of reference miners on loopback, each its own process (the demo and the tests use it)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator, Sequence

from gaia_dagster.core.registry import RegistryEntry

FLEET_PROFILES = ("good", "persistence", "climatology", "clone", "nan", "offline")


def profile_for(index: int) -> str:
    """Profiles in the order good, persistence, climatology, clone, nan, offline, then repeating."""
    return FLEET_PROFILES[index % len(FLEET_PROFILES)]


def free_port() -> int:
    """A free TCP port on loopback."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class FleetMiner:
    index: int
    profile: str
    hotkey_uri: str
    hotkey: str
    port: int
    process: subprocess.Popen | None = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


@dataclass
class Fleet:
    """Reference miners started as subprocesses; ``stop()`` ends them all (also from ``with``)."""

    miners: list[FleetMiner] = field(default_factory=list)

    def registry_entries(self) -> list[RegistryEntry]:
        return [RegistryEntry(m.hotkey, m.base_url, m.index) for m in self.miners]

    def stop(self) -> None:
        for m in self.miners:
            if m.process and m.process.poll() is None:
                m.process.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + 5
        for m in self.miners:
            if m.process is None:
                continue
            try:
                m.process.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                m.process.kill()
                m.process.wait()

    def __enter__(self) -> "Fleet":
        return self

    def __exit__(self, *exc) -> None:  # noqa: ANN002
        self.stop()


def start_fleet(count: int, data_dir: Path, resolution: float = 1.5, profiles: list[str] | None = None,
                name: str = "gaia-demo-miner", inference_delay_s: float = 0.0, ready_timeout_s: float = 60.0,
                allowed_validators: Sequence[str] | None = None,
                extra_args: Sequence[Sequence[str]] = ()) -> Fleet:
    """Start ``count`` miners (profiles cycle as in the demo unless given) and wait until they listen.

    Every miner speaks Fiber and serves only ``allowed_validators`` (by default the hotkey this
    environment's validator signs with, ``pipeline_validator_hotkey``). ``extra_args[i]`` are more
    ``gaia-dagster miner serve`` options for miner ``i`` (a ``--fault``, its own ``--inference-delay``).
    """
    from gaia_dagster.resources.miner import hotkey_for_uri

    allowed = list(allowed_validators) if allowed_validators else [pipeline_validator_hotkey()]
    fleet = Fleet()
    try:
        for i in range(count):
            profile = profiles[i] if profiles else profile_for(i)
            uri = f"//{name}-{i}"
            miner = FleetMiner(i, profile, uri, hotkey_for_uri(uri), free_port())
            data_dir.mkdir(parents=True, exist_ok=True)
            log = open(data_dir / f"miner-{i}.log", "ab")
            miner.process = subprocess.Popen(
                [sys.executable, "-m", "gaia_dagster.miner", "--host", "127.0.0.1", "--port", str(miner.port),
                 "--profile", profile, "--hotkey-uri", uri, "--data-dir", str(data_dir / f"miner-{i}"),
                 "--resolution", str(resolution), "--inference-delay", str(inference_delay_s),
                 *allow_validator_args(allowed), *(extra_args[i] if i < len(extra_args) else ())],
                stdout=log, stderr=subprocess.STDOUT, env={**os.environ, "PYTHONUNBUFFERED": "1"},
            )
            fleet.miners.append(miner)
        _wait_listening(fleet, ready_timeout_s)
    except BaseException:
        fleet.stop()
        raise
    return fleet


def allow_validator_args(allowed_validators: Sequence[str]) -> list[str]:
    """``--allow-validator SS58`` once per allowed validator."""
    return [arg for ss58 in allowed_validators for arg in ("--allow-validator", ss58)]


def pipeline_validator_hotkey() -> str:
    """The hotkey the code location's ``miner_access`` signs with under this environment's ``GAIA_*``
    settings (what ``gaia-dagster validator whoami`` prints): the demo's miners serve it."""
    from gaia_dagster.definitions import default_resources

    return default_resources()["miner_access"].process_config_and_initialize().validator_hotkey()


@contextmanager
def serve_miners_in_process(count: int, data_dir: Path, resolution: float = 30.0, name: str = "gaia-race-miner",
                            inference_delay_s: float = 3600.0, allowed_validators: Sequence[str] | None = None,
                            faults: Sequence[str | None] = (),
                            fault_settings: dict | None = None) -> Iterator[list[tuple[str, str]]]:
    """Serve ``count`` cheap reference miners from this process (one uvicorn thread each) and yield
    their (hotkey, base_url). Inference is held back, so only the protocol is exercised.

    ``faults[i]`` (``gaia_dagster.miner.faults``) makes miner ``i`` hostile, with ``fault_settings``
    (e.g. ``fault_delay_s``) for each hostile one; the others are healthy.

    The miners speak Fiber; ``allowed_validators`` is their allowlist (None: development miners,
    ``dev_open_access``, serving any correctly signed hotkey, as benchmarks with many validators need).
    """
    import uvicorn

    from gaia_dagster.miner.app import MinerSettings, create_app
    from gaia_dagster.resources.miner import hotkey_for_uri

    servers, threads, miners = [], [], []
    try:
        for i in range(count):
            port = free_port()
            base_url = f"http://127.0.0.1:{port}"
            app = create_app(MinerSettings(hotkey_uri=f"//{name}-{i}", profile="good", data_dir=data_dir / str(i),
                                           resolution=resolution, inference_delay_s=inference_delay_s,
                                           public_base_url=base_url,
                                           **({"fault": faults[i], **(fault_settings or {})}
                                              if i < len(faults) and faults[i] else {}),
                                           allowed_validators=tuple(allowed_validators or ()),
                                           dev_open_access=allowed_validators is None))
            server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
            thread = threading.Thread(target=server.run, daemon=True)
            thread.start()
            servers.append(server)
            threads.append(thread)
            miners.append((hotkey_for_uri(f"//{name}-{i}"), base_url))
        deadline = time.monotonic() + 60
        while not all(s.started for s in servers):
            if time.monotonic() > deadline:
                raise RuntimeError("in-process miners did not start")
            time.sleep(0.05)
        yield miners
    finally:
        for server in servers:
            server.should_exit = True
        for thread in threads:  # each server stops its miner's inference before it returns
            thread.join(timeout=60)


def _wait_listening(fleet: Fleet, timeout_s: float) -> None:
    """Wait until every miner accepts TCP connections (an offline miner accepts but never answers)."""
    deadline = time.monotonic() + timeout_s
    pending = list(fleet.miners)
    while pending:
        for m in list(pending):
            if m.process and m.process.poll() is not None:
                raise RuntimeError(f"miner {m.index} ({m.profile}) exited with {m.process.returncode} on start")
            try:
                with socket.create_connection(("127.0.0.1", m.port), timeout=0.5):
                    pending.remove(m)
            except OSError:
                pass
        if pending and time.monotonic() > deadline:
            raise RuntimeError(f"miners {[m.index for m in pending]} did not start within {timeout_s} s")
        if pending:
            time.sleep(0.2)

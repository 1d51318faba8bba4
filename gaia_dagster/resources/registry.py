"""Where the validator learns which miners exist.

On the embedded default the registry is a JSON file (``[{"hotkey", "url", "uid"}]``) that the demo
writes; in production the metagraph takes its place behind the same ``entries()`` call.
"""

from __future__ import annotations

import json
from pathlib import Path

from dagster import ConfigurableResource

from gaia_dagster.core.registry import RegistryEntry
from gaia_dagster.resources.settings import gaia_home


class MinerRegistry(ConfigurableResource):
    """A file-backed miner registry; empty path means ``$GAIA_HOME/miners.json``."""

    path: str = ""

    def registry_path(self) -> Path:
        return Path(self.path) if self.path else gaia_home() / "miners.json"

    def entries(self) -> list[RegistryEntry]:
        """Every listed miner, as listed (normalisation is the caller's job)."""
        path = self.registry_path()
        if not path.exists():
            return []
        raw = json.loads(path.read_text())
        return [RegistryEntry(str(m["hotkey"]), str(m["url"]), m.get("uid")) for m in raw]


def write_registry(path: Path, entries: list[RegistryEntry]) -> None:
    """Write a registry file atomically (the demo and tests use it)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps([{"hotkey": e.hotkey, "url": e.base_url, "uid": e.uid} for e in entries], indent=1))
    tmp.replace(path)

"""Where the validator learns which miners exist.

On the embedded default the registry is a JSON file that the demo writes; in production the
metagraph takes its place behind the same ``entries()`` call.

File format: a JSON list of objects, one per miner, with ``hotkey`` (ss58, required), ``url`` (the
miner's base URL, required) and ``uid`` (an integer, optional); other keys are ignored. A malformed
file is an error that names the file and the entry, never a silently shorter registry.
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
        return parse_registry(path.read_text(), str(path))


class RegistryFileError(ValueError):
    """The miner registry file is not the documented format; the message names the file and entry."""


def _registry_entry(item: object, where: str) -> RegistryEntry:
    """One miner of a registry file (rule: ``hotkey`` and ``url`` non-empty text, ``uid`` an integer
    or absent/null; other keys ignored)."""
    if not isinstance(item, dict):
        raise RegistryFileError(f"{where}: expected an object with hotkey and url, got {type(item).__name__}")
    missing = [key for key in ("hotkey", "url") if not isinstance(item.get(key), str) or not item[key].strip()]
    if missing:
        raise RegistryFileError(f"{where}: {' and '.join(missing)} missing or not a non-empty string "
                                f"(keys present: {', '.join(sorted(map(str, item))) or 'none'})")
    uid = item.get("uid")
    if uid is not None and (isinstance(uid, bool) or not isinstance(uid, int)):
        if isinstance(uid, str) and uid.strip().isdigit():
            uid = int(uid)
        else:
            raise RegistryFileError(f"{where}: uid must be an integer or absent, not {uid!r}")
    return RegistryEntry(item["hotkey"].strip(), item["url"].strip(), uid)


def parse_registry(text: str, source: str) -> list[RegistryEntry]:
    """The entries of a registry file's text, in file order; ``source`` names it in errors."""
    try:
        raw = json.loads(text)
    except json.JSONDecodeError as exc:
        raise RegistryFileError(f"miner registry {source}: not valid JSON ({exc})") from None
    if not isinstance(raw, list):
        raise RegistryFileError(f"miner registry {source}: expected a JSON list of miners, "
                                f"got {type(raw).__name__}")
    entries = []
    for index, item in enumerate(raw):
        hotkey = item.get("hotkey") if isinstance(item, dict) else None
        label = f"entry {index}" + (f" (hotkey {hotkey})" if isinstance(hotkey, str) and hotkey else "")
        entries.append(_registry_entry(item, f"miner registry {source}, {label}"))
    return entries


def write_registry(path: Path, entries: list[RegistryEntry]) -> None:
    """Write a registry file atomically (the demo and tests use it)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps([{"hotkey": e.hotkey, "url": e.base_url, "uid": e.uid} for e in entries], indent=1))
    tmp.replace(path)

"""Where the validator learns which miners exist.

On the embedded default the registry is a JSON file that the demo writes. With ``source="chain"``
(``GAIA_REGISTRY_SOURCE=chain``) the subnet's metagraph takes its place (``resources/chain.py``):
every UID serving an axon that is not a validator, by UID and hotkey (``core/registry.py``).

File format: a JSON list of objects, one per miner, with ``hotkey`` (ss58, required), ``url`` (the
miner's base URL, required) and ``uid`` (an integer, optional); other keys are ignored. A malformed
file is an error that names the file and the entry, never a silently shorter registry.
"""

from __future__ import annotations

import json
from pathlib import Path

from dagster import ConfigurableResource

from gaia_dagster.core.registry import RegistryEntry, registry_from_metagraph
from gaia_dagster.core.urls import url_problem
from gaia_dagster.resources.chain import SubnetChain
from gaia_dagster.resources.settings import gaia_home

REGISTRY_SOURCES = ("file", "chain")


class MinerRegistry(ConfigurableResource):
    """Where miners come from: ``source`` ``file`` (the default; empty path means
    ``$GAIA_HOME/miners.json``) or ``chain`` (the metagraph, see ``registry_entries``)."""

    path: str = ""
    source: str = "file"

    def uses_chain(self) -> bool:
        """True for the metagraph source; an unknown source is an error naming the setting."""
        source = self.source.strip().lower()
        if source not in REGISTRY_SOURCES:
            raise ValueError(f"miner registry source (GAIA_REGISTRY_SOURCE) must be one of "
                             f"{', '.join(REGISTRY_SOURCES)}, not {self.source!r}")
        return source == "chain"

    def registry_path(self) -> Path:
        return Path(self.path) if self.path else gaia_home() / "miners.json"

    def entries(self) -> list[RegistryEntry]:
        """Every listed miner, as listed (normalisation is the caller's job). A file that is missing
        or cannot be read is a ``RegistryFileError`` naming it, never an empty registry: the miners
        listed before stay listed until a good file says otherwise."""
        path = self.registry_path()
        try:
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            raise RegistryFileError(f"miner registry {path}: the file does not exist (set GAIA_REGISTRY or write it; "
                                    f"README 'Miner registry file'); the miners listed before stay listed") from None
        except (OSError, UnicodeDecodeError) as exc:
            raise RegistryFileError(f"miner registry {path}: cannot be read ({type(exc).__name__}: {exc}); "
                                    f"the miners listed before stay listed") from None
        return parse_registry(text, str(path))


class RegistryFileError(ValueError):
    """The miner registry file is not the documented format; the message names the file and entry."""


def _registry_entry(item: object, where: str) -> RegistryEntry:
    """One miner of a registry file (rule: ``hotkey`` and ``url`` non-empty text, the url an http or
    https URL to a host (``core.urls``), ``uid`` an integer or absent/null; other keys ignored)."""
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
    problem = url_problem(item["url"])
    if problem:
        raise RegistryFileError(f"{where}: miner {item['hotkey'].strip()[:64]}: url {problem}")
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


def registry_entries(registry: MinerRegistry, chain: SubnetChain, own_hotkey: str = "") -> list[RegistryEntry]:
    """The miners as the configured source lists them (normalisation is the caller's job)."""
    if registry.uses_chain():
        return registry_from_metagraph(chain.neurons(), own_hotkey, chain.validator_stake_threshold())
    return registry.entries()


def current_uids(registry: MinerRegistry, chain: SubnetChain) -> dict[str, int]:
    """hotkey -> the UID it holds now: every UID of the metagraph (chain source: a miner that
    stopped serving keeps its UID), or the file's ``uid`` fields."""
    if registry.uses_chain():
        return {n.hotkey: n.uid for n in chain.neurons()}
    return {e.hotkey: e.uid for e in registry.entries() if e.uid is not None}

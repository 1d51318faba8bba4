"""Normalising the miner registry (requirement: dedup-defense-in-depth, layer 1: input).

A registry may list a hotkey twice, or two hotkeys on one endpoint. Duplicates never enter the
pipeline: the first entry of a hotkey wins, and a second hotkey on an endpoint already taken is
set aside. Every duplicate is reported so it can be warned about and counted.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlsplit


@dataclass(frozen=True)
class RegistryEntry:
    hotkey: str
    base_url: str
    uid: int | None = None


@dataclass(frozen=True)
class RegistryDuplicate:
    kind: str  # "hotkey" | "endpoint"
    entry: RegistryEntry
    kept: RegistryEntry

    def describe(self) -> str:
        if self.kind == "hotkey":
            return f"hotkey {self.entry.hotkey} listed twice ({self.entry.base_url}); kept {self.kept.base_url}"
        return (f"endpoint {self.entry.base_url} listed for {self.entry.hotkey} and {self.kept.hotkey}; "
                f"kept {self.kept.hotkey}")


FORBIDDEN_KEY_CHARS = set("|,[]")


def endpoint_key(base_url: str) -> str:
    """Scheme, host and port of an endpoint, lower-cased: two URLs naming one server are equal."""
    parts = urlsplit(base_url.strip())
    port = parts.port or (443 if parts.scheme == "https" else 80)
    return f"{parts.scheme.lower()}://{(parts.hostname or '').lower()}:{port}"


def normalise_registry(entries: list[RegistryEntry]) -> tuple[list[RegistryEntry], list[RegistryDuplicate]]:
    """Unique miners in registry order, and the duplicates set aside (first entry wins)."""
    by_hotkey: dict[str, RegistryEntry] = {}
    by_endpoint: dict[str, RegistryEntry] = {}
    kept: list[RegistryEntry] = []
    duplicates: list[RegistryDuplicate] = []
    for entry in entries:
        hotkey = entry.hotkey.strip()
        if not hotkey or FORBIDDEN_KEY_CHARS & set(hotkey):
            raise ValueError(f"miner registry entry has an invalid hotkey {entry.hotkey!r}")
        entry = RegistryEntry(hotkey, entry.base_url.strip().rstrip("/"), entry.uid)
        endpoint = endpoint_key(entry.base_url)
        if hotkey in by_hotkey:
            duplicates.append(RegistryDuplicate("hotkey", entry, by_hotkey[hotkey]))
        elif endpoint in by_endpoint:
            duplicates.append(RegistryDuplicate("endpoint", entry, by_endpoint[endpoint]))
        else:
            by_hotkey[hotkey] = by_endpoint[endpoint] = entry
            kept.append(entry)
    return kept, duplicates


@dataclass(frozen=True)
class ChainNeuron:
    """One UID of the subnet's metagraph: its hotkey, served axon (``ip:port``, None when nothing is
    served), stake (in the subnet's token), validator permit and the block it last set weights at."""

    uid: int
    hotkey: str
    axon: str | None
    stake: float
    validator_permit: bool
    last_update: int = 0

    @property
    def ip(self) -> str:
        """The axon's IP as the chain's node list shows it: ``0.0.0.0`` when nothing is served."""
        return self.axon.rsplit(":", 1)[0] if self.axon else "0.0.0.0"


def is_validator(neuron: ChainNeuron, min_validator_stake: float) -> bool:
    """Rule: a neuron holding a validator permit and at least the validator stake threshold
    validates; it is not asked for forecasts."""
    return neuron.validator_permit and neuron.stake >= min_validator_stake


def registry_from_metagraph(neurons: list[ChainNeuron], own_hotkey: str = "",
                            min_validator_stake: float = 1000.0) -> list[RegistryEntry]:
    """The miners of a metagraph, by UID: every neuron serving an axon that is neither a validator
    (``is_validator``) nor this validator's own hotkey. A miner is its hotkey: a UID taken by a new
    hotkey is a new miner, and the old hotkey simply stops being listed (its history stays its own).
    Axons are reached over http, as the Fiber server listens (https per miner is MinerAccess's)."""
    return [RegistryEntry(n.hotkey, f"http://{n.axon}", n.uid)
            for n in sorted(neurons, key=lambda n: n.uid)
            if n.axon and n.hotkey != own_hotkey and not is_validator(n, min_validator_stake)]

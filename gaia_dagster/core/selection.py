"""Deterministic, auditable miner selection (requirement: missed-work-grace-and-fallback, section 3).

The order of a run's miners is seeded by sha256 of the run's deterministic ID, so every replica
and validator computes the same order; inactive miners are skipped and recorded as skipped.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Candidate:
    hotkey: str
    active: bool


@dataclass
class Selection:
    selected: list[str] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (hotkey, reason)


def selection_seed(run_id: str) -> str:
    """The run's selection seed: sha256 hex of its deterministic ID."""
    return hashlib.sha256(run_id.encode("utf-8")).hexdigest()


def miner_order(run_id: str, hotkeys: list[str]) -> list[str]:
    """Miners ordered by sha256(seed | hotkey): the same order everywhere, fresh every run."""
    seed = selection_seed(run_id)
    return sorted(set(hotkeys), key=lambda h: hashlib.sha256(f"{seed}|{h}".encode("utf-8")).hexdigest())


def select_miners(run_id: str, candidates: list[Candidate], limit: int | None = None) -> Selection:
    """Walk the seeded order: active miners are selected (up to ``limit``), the rest skipped with why."""
    by_hotkey = {c.hotkey: c for c in candidates}
    selection = Selection()
    for hotkey in miner_order(run_id, list(by_hotkey)):
        if not by_hotkey[hotkey].active:
            selection.skipped.append((hotkey, "inactive: missed the grace window"))
        elif limit is not None and len(selection.selected) >= limit:
            selection.skipped.append((hotkey, f"over the run's limit of {limit} miners"))
        else:
            selection.selected.append(hotkey)
    return selection

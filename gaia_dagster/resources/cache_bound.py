"""The data cache's cap (``GAIA_CACHE_MAX_GB``): least recently used entries are evicted past it.

Every entry written under a registered cache root (``register_bound``, done by the sources'
resource) is followed by ``enforce_bound``: when the root's complete entries (their markers' recorded
sizes) add up to more than the cap, entries are evicted oldest last use first (the marker's
modification time, touched on every read; ``resources/cache.py``) until the cache fits. An entry is
evicted only under its own exclusive lock taken without waiting, so one being read (a reader holds
it shared) or written is skipped, never removed under its user. The entry just written is never
evicted by its own writer. Several processes may enforce at once: each eviction is one entry's
locked discard. Private folders (forecast mirrors, hidden temporaries) are not cache entries.
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path

from gaia_dagster.resources.cache import acquire, complete_marker, discard, lock_path

log = logging.getLogger(__name__)

MARKER_SUFFIX = ".complete"
_BOUNDS: dict[Path, int] = {}


@dataclass(frozen=True)
class CachedEntry:
    """A complete entry as its marker records it: path, bytes, last use (epoch seconds)."""

    path: Path
    size: int
    last_used: float


def register_bound(root: Path, max_bytes: int) -> None:
    """Rule: entries written under ``root`` keep it within ``max_bytes`` (this process)."""
    _BOUNDS[Path(root).resolve()] = int(max_bytes)


def bound_of(path: Path) -> tuple[Path, int] | None:
    """The registered root holding ``path`` and its cap (the innermost root), or None."""
    resolved = Path(path).resolve()
    roots = [root for root in _BOUNDS if resolved.is_relative_to(root)]
    if not roots:
        return None
    root = max(roots, key=lambda r: len(r.parts))
    return root, _BOUNDS[root]


def _markers(root: Path):
    """Every published marker under ``root``, hidden folders (temporaries, mirrors) left out; a
    folder removed while it is walked (another process evicting) is skipped, not an error."""
    for folder, dirs, files in os.walk(root):
        dirs[:] = [d for d in dirs if not d.startswith(".")]
        for name in files:
            if name.endswith(MARKER_SUFFIX) and not name.startswith("."):
                yield Path(folder) / name


def cache_entries(root: Path) -> list[CachedEntry]:
    """Rule: the cache's entries are its published markers (outside hidden folders), sized by the
    file sizes each marker records."""
    found = []
    for marker in _markers(Path(root)):
        try:
            files = json.loads(marker.read_text()).get("files", {})
            found.append(CachedEntry(marker.with_name(marker.name[:-len(MARKER_SUFFIX)]),
                                     int(sum(files.values())), marker.stat().st_mtime))
        except (OSError, ValueError, AttributeError, TypeError):
            continue  # being replaced or discarded right now
    return found


def cache_bytes(root: Path) -> int:
    """The bytes the cache's complete entries hold."""
    return sum(entry.size for entry in cache_entries(root))


def evict(entry: CachedEntry) -> bool:
    """Rule (never under a reader): discard ``entry`` only when its lock is free right now."""
    fd = acquire(lock_path(entry.path), wait=False)
    if fd is None:
        return False  # a reader or writer holds it
    try:
        if complete_marker(entry.path) is None:
            return False  # already gone or being rebuilt
        discard(entry.path)
        return True
    finally:
        os.close(fd)


def enforce_bound(written: Path) -> list[Path]:
    """Rule (LRU under the cap): after ``written`` was published, evict least recently used entries
    of its cache until the cache fits its cap; returns what was evicted (each logged)."""
    bound = bound_of(written)
    if bound is None:
        return []
    root, cap = bound
    entries = cache_entries(root)
    total = sum(entry.size for entry in entries)
    evicted: list[Path] = []
    keep = Path(written).resolve()
    for entry in sorted(entries, key=lambda e: e.last_used):
        if total <= cap:
            break
        if entry.path.resolve() == keep or not evict(entry):
            continue
        total -= entry.size
        evicted.append(entry.path)
        log.info("cache over its cap (%d bytes): evicted %s (%d bytes, least recently used)",
                 cap, entry.path, entry.size)
    if total > cap:
        log.info("cache %s holds %d bytes over its cap of %d: the rest is in use", root, total, cap)
    return evicted

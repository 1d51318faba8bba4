"""Copies by content (issue 18): a forecast that is another miner's, however re-encoded or lightly
perturbed, is found by comparing the fields themselves, never the bytes.

The rule, in three parts:

1. **Fingerprint.** At verification, every miner's forecast of a run is sampled at the same
   ``FIELDS`` fields (variable, level, lead) and ``POINTS`` grid points, drawn from a seed that is
   the run's own (``fingerprint_plan``); the samples are the fingerprint. The points are found by
   latitude and longitude value, so a store that was recompressed, rechunked, had its variables
   reordered or its latitudes flipped (every layout the contract allows) gives the same fingerprint.
2. **Distance.** For two miners, per field the RMS of their difference over the points finite in
   both, divided by the field's scale (the median over the run's miners of the field's spread over
   the points, so that copies, however many, cannot shrink it); the distance is the RMS of these
   over the fields the two share (``pair_distances``). Independent forecasts differ by their errors,
   a few percent of the field's spread at the shortest lead and more after; a copy plus noise of
   1e-6 of the values differs by ~1e-4, one of 5e-5 by ~4e-3, under ``COPY_THRESHOLD``.
3. **Verdict.** Every pair closer than ``COPY_THRESHOLD`` is a copy pair. Content carries no
   evidence of which of two near-identical forecasts came first (nor does the order in which the
   validator read them), so the verdict is symmetric: every miner in a copy pair is refused alike,
   naming the other, the distance and the threshold, and saying that who copied whom cannot be
   decided. The pairs are a function of the run's set of fingerprints only, so the verdict never
   depends on the order in which forecasts arrive.
"""

from __future__ import annotations

import hashlib
import warnings
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Iterator, Mapping, Sequence

import numpy as np

FIELDS = 8
"""Fields (variable, level, lead) sampled per forecast."""
POINTS = 1024
"""Grid points sampled per field (a fingerprint is FIELDS x POINTS float32: 32 KiB)."""
COPY_THRESHOLD = 5e-3
"""Two forecasts closer than this (in units of each field's spread) are a copy pair: a tenth of the
closest honest pair of the embedded world (two good miners at lead 12 h, 0.054)."""
MIN_SHARED = 0.5
"""A field counts for a pair only where at least this fraction of its points is finite in both."""


@dataclass(frozen=True)
class FieldRef:
    """One sampled field: a contract variable, its level (None for a surface variable) and the
    index of its time step."""

    variable: str
    level: int | None
    time_index: int


@dataclass(frozen=True)
class FingerprintPlan:
    """What every forecast of one run is sampled at: the fields and the (lat, lon) values."""

    seed: str
    fields: tuple[FieldRef, ...]
    lats: np.ndarray
    lons: np.ndarray


@dataclass(frozen=True)
class CopyPair:
    """Two miners of a run whose forecasts are near-identical (``a`` < ``b``: no order implied)."""

    a: str
    b: str
    distance: float
    threshold: float
    fields_compared: int


def run_seed(run_id: int, run_key: str, created_at: str) -> str:
    """The run's sampling seed: fixed for the run (every miner is sampled alike, on every replica),
    unknown to miners before the run starts (it holds the moment the validator created the run)."""
    return hashlib.sha256(f"gaia-copies|{run_id}|{run_key}|{created_at}".encode()).hexdigest()


def fingerprint_plan(seed: str, candidates: Sequence[FieldRef], lat: np.ndarray, lon: np.ndarray,
                     n_fields: int = FIELDS, n_points: int = POINTS) -> FingerprintPlan:
    """Draw ``n_fields`` of ``candidates`` and ``n_points`` grid points from ``seed``. Points avoid
    the two pole rows, so that the 720-row layout (no south pole) holds every one of them."""
    rng = np.random.default_rng(int(seed[:16], 16))
    picks = rng.choice(len(candidates), size=min(n_fields, len(candidates)), replace=False)
    rows = rng.integers(1, len(lat) - 1, size=n_points)
    cols = rng.integers(0, len(lon), size=n_points)
    return FingerprintPlan(seed, tuple(candidates[i] for i in sorted(picks)),
                           np.asarray(lat, dtype=np.float64)[rows], np.asarray(lon, dtype=np.float64)[cols])


def point_indices(values: np.ndarray, axis: np.ndarray, name: str) -> np.ndarray:
    """Where each sampled coordinate value sits on a store's axis (by value, within 1e-6 degree)."""
    axis = np.asarray(axis, dtype=np.float64)
    order = np.argsort(axis, kind="stable")
    pos = np.clip(np.searchsorted(axis[order], values), 0, len(axis) - 1)
    lower = np.clip(pos - 1, 0, len(axis) - 1)
    best = np.where(np.abs(axis[order][lower] - values) < np.abs(axis[order][pos] - values), lower, pos)
    if np.any(np.abs(axis[order][best] - values) > 1e-6):
        raise ValueError(f"the store's {name} axis lacks sampled values (not a contract layout)")
    return order[best]


def sample_plane(plane: np.ndarray, lat: np.ndarray, lon: np.ndarray, plan: FingerprintPlan) -> np.ndarray:
    """One field's samples: the plane's values at the plan's points, as float32."""
    rows, cols = point_indices(plan.lats, lat, "lat"), point_indices(plan.lons, lon, "lon")
    return np.asarray(plane)[rows, cols].astype(np.float32)


def field_scales(prints: np.ndarray) -> np.ndarray:
    """Per field, the median over miners of the field's spread (std) over the sampled points; a
    copy has its original's spread, so copies cannot shrink it. Never zero."""
    with _quiet_nan():
        spread = np.nanmedian(np.nanstd(prints, axis=2), axis=0)
    return np.where(np.isfinite(spread) & (spread > 0), spread, 1.0)


def pair_distances(prints: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """All pairwise distances of (miners, fields, points) fingerprints (the module's rule 2), and
    per pair how many fields were compared. A pair sharing no field has distance inf. Cost: per
    field three matrix products of (miners x points); centring on the per-point median keeps the
    expansion exact to ~1e-12 of a field's spread."""
    m, k, _ = prints.shape
    scaled = prints.astype(np.float64) / field_scales(prints)[None, :, None]
    with _quiet_nan():
        centred = scaled - np.nanmedian(scaled, axis=0, keepdims=True)
    total, fields = np.zeros((m, m)), np.zeros((m, m))
    for f in range(k):
        finite = np.isfinite(centred[:, f, :]).astype(np.float64)
        x = np.where(finite > 0, centred[:, f, :], 0.0)
        shared = finite @ finite.T
        squares = (x * x) @ finite.T
        sq = np.maximum(squares + squares.T - 2.0 * (x @ x.T), 0.0)
        usable = shared >= MIN_SHARED * prints.shape[2]
        total += np.where(usable, sq / np.maximum(shared, 1.0), 0.0)
        fields += usable
    with np.errstate(divide="ignore", invalid="ignore"):
        distance = np.where(fields > 0, np.sqrt(total / np.maximum(fields, 1.0)), np.inf)
    return distance, fields


def copy_pairs(prints: Mapping[str, np.ndarray], threshold: float = COPY_THRESHOLD) -> list[CopyPair]:
    """Every pair of miners closer than ``threshold`` (rule 3), sorted by hotkey: a function of the
    set of fingerprints alone. All pairs are screened by ``pair_distances``; those near the
    threshold are measured again directly. Fingerprints of another shape are not compared."""
    hotkeys = sorted(prints)
    shapes = {prints[h].shape for h in hotkeys}
    if len(hotkeys) < 2 or len(shapes) != 1:
        return []
    stacked = np.stack([prints[h] for h in hotkeys])
    distance, _ = pair_distances(stacked)
    scales = field_scales(stacked)
    pairs = []
    for a, b in zip(*np.nonzero(np.triu(distance < 2 * threshold, k=1))):
        exact, fields = direct_distance(stacked[a], stacked[b], scales)
        if exact < threshold:
            pairs.append(CopyPair(hotkeys[a], hotkeys[b], exact, threshold, fields))
    return pairs


def pairs_with(hotkey: str, prints: Mapping[str, np.ndarray], threshold: float = COPY_THRESHOLD) -> list[CopyPair]:
    """The copy pairs one miner is in, measured directly against every other fingerprint of the run
    (the same scales and distance as ``copy_pairs``, in n comparisons instead of n^2)."""
    hotkeys = sorted(prints)
    if hotkey not in prints or len({prints[h].shape for h in hotkeys}) != 1:
        return []
    stacked = np.stack([prints[h] for h in hotkeys])
    scales, mine = field_scales(stacked), prints[hotkey]
    pairs = []
    for other, values in zip(hotkeys, stacked):
        distance, fields = direct_distance(mine, values, scales) if other != hotkey else (np.inf, 0)
        if distance < threshold:
            pairs.append(CopyPair(min(hotkey, other), max(hotkey, other), distance, threshold, fields))
    return pairs


def direct_distance(a: np.ndarray, b: np.ndarray, scales: np.ndarray) -> tuple[float, int]:
    """Rule 2 for one pair, from the differences themselves (exactly 0 for identical forecasts):
    the distance and the number of fields compared (inf, 0 when they share none)."""
    diff = (a.astype(np.float64) - b.astype(np.float64)) / scales[:, None]
    finite = np.isfinite(diff)
    usable = finite.sum(axis=1) >= MIN_SHARED * a.shape[1]
    if not usable.any():
        return float("inf"), 0
    per_field = np.where(finite, diff, 0.0)[usable] ** 2
    mse = per_field.sum(axis=1) / finite[usable].sum(axis=1)
    return float(np.sqrt(mse.mean())), int(usable.sum())


def honest_spread(prints: Mapping[str, np.ndarray], pairs: Sequence[CopyPair]) -> float | None:
    """The median distance between the run's forecasts that are in no copy pair (evidence shown
    beside the threshold); None with fewer than two of them."""
    copied = {p.a for p in pairs} | {p.b for p in pairs}
    rest = sorted(h for h in prints if h not in copied)
    if len(rest) < 2:
        return None
    distance, _ = pair_distances(np.stack([prints[h] for h in rest]))
    values = distance[np.triu_indices(len(rest), k=1)]
    values = values[np.isfinite(values)]
    return float(np.median(values)) if values.size else None


def partners(hotkey: str, pairs: Sequence[CopyPair]) -> list[CopyPair]:
    """The copy pairs a miner is in (empty: not a copy)."""
    return [p for p in pairs if hotkey in (p.a, p.b)]


def copy_reason(hotkey: str, pairs: Sequence[CopyPair]) -> str | None:
    """Why a miner is refused as a copy (None when it is in no pair): each other miner with the
    distance and threshold, and that who copied whom cannot be decided."""
    mine = partners(hotkey, pairs)
    if not mine:
        return None
    others = "; ".join(f"miner {p.b if p.a == hotkey else p.a} at distance {p.distance:.3g} "
                       f"(threshold {p.threshold:g}, {p.fields_compared} fields)" for p in mine)
    return (f"the forecast is near-identical to {others}: a copy; which of them copied which cannot be "
            "decided from the content, so every forecast of the pair is refused alike")


@contextmanager
def _quiet_nan() -> Iterator[None]:
    """Silence numpy's all-NaN slice warnings (an all-NaN field is simply left out)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        yield

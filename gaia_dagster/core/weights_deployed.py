"""The weights every Gaia validator sets: Gaia v2.9.96's weight path, step by step.

Subnet 57's validators run Gaia's code, and the chain measures each validator's consensus against
the others; a validator that means to keep its vtrust submits the vector that code produces. This
module is that path, read from Gaia v2.9.96 (``_calc_task_weights`` and
``_perform_weight_calculations_sync`` of its validator, ``weights/burn.py``,
``FiberWeightSetter.set_weights``, and fiber's ``set_node_weights``), one function per step:

1. ``rows_in_window``: the score rows of the last 15 days (by the run's GFS init time) whose task
   id matches the weather patterns, combined-run rows first, newest first.
2. ``mean_scores``: each UID's plain mean over those rows, a NaN or unreadable entry counting 0.
   A null entry anywhere stops the whole calculation (``NoWeights``): Gaia's NaN test raises on it.
3. ``ip_rule``: a registered UID whose IP is empty or ``"0"`` gets nothing.
4. ``curve``: max-normalisation, the generalised logistic curve around the 80th percentile of
   the distinct positive values, a contrast boost when the curve leaves them too uniform, and
   normalisation to sum 1 (or everything to UID 252 when nothing is left).
5. ``burn``: ``BURN_RATE`` (0.75) of the total to the UID of ``BURN_HOTKEY``, the rest scaled down.
6. ``zero_active_validators``: a validator-permit holder that set weights within 500 blocks gets
   nothing, unless it is the burn UID.
7. ``float32_normalised``: the vector over the registered UIDs, in float32, divided by its sum
   exactly as PyTorch sums it (``core/float32_sum``), then renormalised in float64 over 256 UIDs.
8. ``quantize_u16``: fiber's form: the largest weight 65535, every positive one
   ``round(w * 65535 / max)``, zeros left out.

The coldkey "topology smoothing" Gaia applies between steps 3 and 4 reads a ``coldkey`` field the
validator's node query never selects (``uid, hotkey, ip, port, incentive``), so it never changes
a deployed validator's weights and is not applied here.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Mapping, Sequence

import numpy as np

from gaia_dagster.core.float32_sum import torch_cpu_sum

UIDS = 256
WINDOW = timedelta(days=15)
FALLBACK_UID = 252
VERSION_KEY = 2186            # Gaia 2.9.96: 1000 * 2 + 10 * 9 + 96
ACTIVE_VALIDATOR_BLOCKS = 500
TASK_ID_PATTERNS = ("weather_scores_%", "final_weather_scores%", "initial_weather_scores%")
RUN_ROW_PATTERN = TASK_ID_PATTERNS[0]
# the generalised logistic curve: growth b, Q, shape v, upper k, lower a, and a linear slope
CURVE_B, CURVE_Q, CURVE_V, CURVE_K, CURVE_A, CURVE_SLOPE = 70, 8, 0.3, 0.98, 0.0, 0.01
CURVE_PERCENTILE = 80
UNIFORM_CV = 0.03
DEFAULT_BURN_HOTKEY = "5GmhjCqDTsRcKqPFw4FDig8tVBfFGNrwP8ywe5En5hnELwDQ"
U16_MAX = 65535


class NoWeights(Exception):
    """Gaia's path ends without a vector: the validator sets nothing this time."""


@dataclass(frozen=True)
class ScoreRow:
    """One row of Gaia's score table: ``task_id``, ``created_at`` (the run's GFS init) and the
    raw ``score`` entries by UID (numbers, ``None`` or strings, as stored)."""

    task_id: str
    created_at: datetime
    score: Sequence[Any]


@dataclass(frozen=True)
class Node:
    """One registered UID as the metagraph gives it."""

    uid: int
    hotkey: Any
    ip: Any = None
    port: Any = None
    coldkey: Any = None
    stake: float = 0.0
    validator_permit: bool = False
    last_update: int = 0


@dataclass(frozen=True)
class WeightEnv:
    """The environment Gaia's path reads, parsed as Gaia parses it."""

    burn_enabled: bool = True
    burn_rate: float = 0.75          # weights/burn.apply_burn_from_env (default "0.75")
    exempt_burn_rate: float = 0.5    # weights/burn.get_burn_uid_if_enabled (default "0.5")
    burn_hotkey: str = DEFAULT_BURN_HOTKEY
    contrast_gamma: float = 1.3

    @classmethod
    def from_mapping(cls, env: Mapping[str, str] | None) -> "WeightEnv":
        """``BURN_MINER_EMISSION`` (true unless 1/true/yes/y/on is not what it says), ``BURN_RATE``
        (unparseable: 0, then clamped to [0, 1]), ``BURN_HOTKEY`` (stripped) and
        ``WEIGHT_CONTRAST_GAMMA`` (unparseable: 1.3)."""
        env = env or {}
        enabled = str(env.get("BURN_MINER_EMISSION", "true")).strip().lower() in ("1", "true", "yes", "y", "on")
        return cls(enabled, _rate(env.get("BURN_RATE", "0.75")), _rate(env.get("BURN_RATE", "0.5")),
                   str(env.get("BURN_HOTKEY", DEFAULT_BURN_HOTKEY)).strip(),
                   _float_or(env.get("WEIGHT_CONTRAST_GAMMA", "1.3"), 1.3))


def _float_or(text: Any, default: float) -> float:
    try:
        return float(text)
    except (TypeError, ValueError):
        return default


def _rate(text: Any) -> float:
    return max(0.0, min(1.0, _float_or(text, 0.0)))


@dataclass(frozen=True)
class DeployedWeights:
    """The vector handed to the chain call (``weights``, 256 floats, or None when nothing is set),
    what the chain receives (``uids``/``u16``), the version key, and what each step decided."""

    weights: list[float] | None
    uids: list[int] = field(default_factory=list)
    u16: list[int] = field(default_factory=list)
    version_key: int = VERSION_KEY
    reason: str = ""
    mean_scores: list[float] = field(default_factory=list)
    rows_used: int = 0
    burn_uid: int | None = None
    zeroed_validators: list[int] = field(default_factory=list)
    zeroed_no_ip: list[int] = field(default_factory=list)

    def as_output(self) -> dict[str, Any]:
        """The CLI's answer: ``weights`` (or null), ``uids_u16`` and ``u16``."""
        return {"weights": self.weights, "uids_u16": self.uids, "u16": self.u16}


# -- 1. the rows ---------------------------------------------------------------------------------

def _like(pattern: str, text: str) -> bool:
    """SQL ``LIKE`` (case-sensitive): ``%`` any run of characters, ``_`` any one character."""
    regex = "".join(".*" if c == "%" else "." if c == "_" else re.escape(c) for c in pattern)
    return re.fullmatch(regex, text, re.S) is not None


def rows_in_window(rows: Sequence[ScoreRow], now: datetime) -> list[ScoreRow]:
    """Gaia's weather query: rows with ``created_at >= now - 15 days`` and a task id matching one
    of ``TASK_ID_PATTERNS``, ordered per-run rows (``weather_scores_%``) first, then newest first."""
    start = now - WINDOW
    kept = [row for row in rows
            if row.created_at >= start and any(_like(p, row.task_id) for p in TASK_ID_PATTERNS)]
    return sorted(kept, key=lambda row: (0 if _like(RUN_ROW_PATTERN, row.task_id) else 1,
                                         -row.created_at.timestamp()))


# -- 2. the mean ---------------------------------------------------------------------------------

def _entries(row: ScoreRow) -> list[Any]:
    """A row's entries, or 256 NaNs when it is not a list of 256 (Gaia's defensive default)."""
    score = row.score
    return list(score) if isinstance(score, list) and len(score) == UIDS else [math.nan] * UIDS


def _coerce(value: Any) -> float:
    """``float(value)``, NaN when that fails (strings such as "NaN" included)."""
    try:
        return float(value)
    except Exception:  # noqa: BLE001 - Gaia turns every failure into NaN
        return math.nan


def mean_scores(rows: Sequence[ScoreRow]) -> np.ndarray:
    """Each UID's mean over the rows with NaN counted as 0 (a missing day is no row, so it does
    not count). Raises ``NoWeights`` where Gaia's first pass fails: ``np.isnan`` of a null (or of
    anything not a number or a string)."""
    matrix = []
    for row in rows:
        entries = _entries(row)
        for value in entries:
            if not isinstance(value, str):
                try:
                    np.isnan(value)
                except Exception as exc:  # noqa: BLE001 - any failure here ends Gaia's calculation
                    raise NoWeights(f"row {row.task_id}: entry {value!r} is not a number "
                                    f"(Gaia's weight calculation fails on it and sets nothing)") from exc
        matrix.append(np.array([_coerce(v) for v in entries], dtype=float))
    if not matrix:
        return np.full(UIDS, np.nan)
    return np.mean(np.nan_to_num(np.vstack(matrix), nan=0.0), axis=0)


# -- 3. the IP rule ------------------------------------------------------------------------------

def ip_rule(scores: np.ndarray, nodes_by_uid: Sequence[Node | None]) -> tuple[np.ndarray, list[int]]:
    """The pre-curve weights: a UID's mean score (0 where NaN or 0), set to 0 when the UID is
    registered with an IP that is empty or ``"0"``. A UID holding more than 0.1 whose registered
    hotkey cannot be sliced (null) stops the calculation, as Gaia's log line does."""
    weights = np.zeros(UIDS)
    zeroed = []
    for uid in range(UIDS):
        value = scores[uid]
        if np.isnan(value) or value == 0:
            continue
        node = nodes_by_uid[uid]
        if node is not None:
            if not node.ip or str(node.ip) == "0":
                zeroed.append(uid)
                continue
        weights[uid] = value * 1.0
        if weights[uid] > 0.1 and node is not None and not isinstance(node.hotkey, (str, list, tuple, bytes)):
            raise NoWeights(f"UID {uid}: hotkey {node.hotkey!r} is not a string")
    return weights, zeroed


# -- 4. the curve --------------------------------------------------------------------------------

def fallback() -> list[float]:
    """Everything to UID 252: Gaia's answer when no weight survives."""
    weights = [0.0] * UIDS
    weights[FALLBACK_UID] = 1.0
    return weights


def curve_midpoint(positives: np.ndarray) -> float:
    """The 80th percentile of the distinct positive normalised weights (of all of them when
    fewer than 3 are distinct), so that many ties at the max do not flatten the curve."""
    unique = np.unique(positives)
    return np.percentile(unique if unique.size >= 3 else positives, CURVE_PERCENTILE)


def logistic(norm: float, midpoint: float) -> float:
    """a + (k - a) / (1 + Q exp(-b (x - M)))^(1/v) + slope x, for one normalised weight x."""
    sig = CURVE_A + (CURVE_K - CURVE_A) / np.power(1 + CURVE_Q * np.exp(-CURVE_B * (norm - midpoint)), 1 / CURVE_V)
    return sig + CURVE_SLOPE * norm


def contrast_boost(transformed: np.ndarray, norm: np.ndarray, weights: np.ndarray, gamma: float) -> None:
    """When the curve leaves the positive values too uniform (coefficient of variation < 0.03),
    multiply each positive weight's curve value by its normalised weight to the power ``gamma``."""
    positive = transformed[transformed > 0]
    if len(positive) <= 1:
        return
    mean = float(np.mean(positive)) if float(np.mean(positive)) != 0.0 else 1e-12
    cv = float(np.std(positive) / (abs(mean) + 1e-12))
    if cv < UNIFORM_CV:
        idx = np.where(weights > 0.0)[0]
        transformed[idx] = transformed[idx] * np.power(np.maximum(norm[idx], 1e-9), gamma)


def curve(weights: np.ndarray, gamma: float) -> list[float]:
    """Step 4: max-normalise the non-zero weights, pass the positive ones through ``logistic``
    around ``curve_midpoint``, ``contrast_boost``, and normalise to sum 1; ``fallback()`` when no
    weight is left at any point (as Gaia, also when the only positive weight is UID 0's: it tests
    the index array's truth)."""
    nonzero = weights != 0.0
    if not np.any(nonzero) or np.max(weights[nonzero]) == 0:
        return fallback()
    norm = np.copy(weights)
    norm[nonzero] /= np.max(weights[nonzero])
    positives = norm[norm > 0]
    if not positives.any():
        return fallback()
    midpoint = curve_midpoint(positives)
    indices = np.where(weights > 0.0)[0]
    if not indices.any():
        return fallback()
    transformed = np.zeros_like(weights)
    for idx in indices:
        transformed[idx] = logistic(norm[idx], midpoint)
    contrast_boost(transformed, norm, weights, gamma)
    total = np.sum(transformed)
    if not total > 0:
        return fallback()
    transformed /= total
    return transformed.tolist()


# -- 5-8. burn, validators, the chain's form ---------------------------------------------------

def burn_uid(env: WeightEnv, uid_of: Mapping[str, int], rate: float) -> int | None:
    """The burn hotkey's UID when the burn is on at ``rate`` > 0 and the hotkey is registered."""
    if not env.burn_enabled or rate <= 0.0 or not env.burn_hotkey:
        return None
    return uid_of.get(env.burn_hotkey)


def burn(weights: list[float], env: WeightEnv, uid_of: Mapping[str, int]) -> list[float]:
    """Step 5: negatives to 0, every weight times (1 - rate), and rate x the total added to the
    burn UID; unchanged when the burn is off, its hotkey unregistered, or the total not positive."""
    uid = burn_uid(env, uid_of, env.burn_rate)
    if uid is None or not 0 <= uid < len(weights):
        return weights
    base = [max(0.0, float(w)) for w in weights]
    total = sum(base)
    if total <= 0.0:
        return weights
    reduced = [(1.0 - env.burn_rate) * w for w in base]
    reduced[uid] = reduced[uid] + env.burn_rate * total
    return reduced


def active_validators(nodes: Sequence[Node], block: int) -> list[int]:
    """UIDs with a validator permit that set weights less than 500 blocks before ``block``."""
    return sorted(n.uid for n in nodes if n.validator_permit and block - int(n.last_update) < ACTIVE_VALIDATOR_BLOCKS)


def zero_active_validators(weights: list[float], validators: Sequence[int], exempt: int | None) -> tuple[list[float], list[int]]:
    """Step 6: each active validator's positive weight set to 0, the burn UID excepted."""
    weights = list(weights)
    zeroed = []
    for uid in validators:
        if uid < len(weights) and uid != exempt and weights[uid] > 0:
            weights[uid] = 0.0
            zeroed.append(uid)
    return weights, zeroed


def float32_normalised(weights: list[float], registered: Sequence[int]) -> list[float]:
    """Step 7: the registered UIDs' weights (negatives 0) as float32, divided by their float32
    sum (PyTorch's order); none positive: 1 to UID 252 when more than 252 UIDs are registered
    and 252 is one of them. Then, over 256 UIDs, each positive value over the float64 sum of
    the positive ones."""
    aligned = np.array([max(0.0, weights[uid]) if uid < len(weights) else 0.0 for uid in registered], dtype=np.float32)
    if int((aligned > 0).sum()) == 0:
        aligned = np.zeros(len(registered), dtype=np.float32)
        if FALLBACK_UID < len(registered) and FALLBACK_UID in registered:
            aligned[list(registered).index(FALLBACK_UID)] = 1.0
    else:
        aligned = aligned / torch_cpu_sum(aligned)
    vector = [0.0] * UIDS
    for position, uid in enumerate(registered):
        if 0 <= uid < UIDS:
            vector[uid] = float(aligned[position])
    positive_sum = float(sum(w for w in vector if w > 0))
    return [w / positive_sum if w > 0 else 0.0 for w in vector] if positive_sum > 0 else vector


def quantize_u16(weights: Sequence[float]) -> tuple[list[int], list[int]]:
    """Step 8 (fiber): the UIDs with a positive weight and ``round(w * 65535 / max)`` for each
    (Python's round: halves to even); nothing when every weight is 0."""
    if not any(weights):
        return [], []
    scale = U16_MAX / max(weights)
    kept = [(uid, w) for uid, w in enumerate(weights) if w > 0]
    return [uid for uid, _ in kept], [round(w * scale) for _, w in kept]


def deployed_weights(rows: Sequence[ScoreRow], nodes: Sequence[Node], now: datetime, block: int,
                     env: Mapping[str, str] | None = None) -> DeployedWeights:
    """Steps 1-8: what a Gaia v2.9.96 validator with these score rows, this metagraph and this
    environment hands to the chain at ``now`` / ``block``."""
    settings = WeightEnv.from_mapping(env)
    if not nodes:
        return DeployedWeights(None, reason="no registered UIDs: Gaia sets nothing without its node table")
    ordered = sorted(nodes, key=lambda n: n.uid)
    by_uid: list[Node | None] = [None] * UIDS
    for node in ordered:
        if 0 <= node.uid < UIDS:
            by_uid[node.uid] = node
    window = rows_in_window(rows, now)
    try:
        scores = mean_scores(window)
        pre_curve, no_ip = ip_rule(scores, by_uid)
    except NoWeights as exc:
        return DeployedWeights(None, reason=str(exc), rows_used=len(window))
    uid_of = {n.hotkey: n.uid for n in ordered if isinstance(n.hotkey, str)}
    curved = burn(curve(pre_curve, settings.contrast_gamma), settings, uid_of)
    exempt = burn_uid(settings, uid_of, settings.exempt_burn_rate)
    unzeroed, zeroed = zero_active_validators(curved, active_validators(ordered, block), exempt)
    vector = float32_normalised(unzeroed, [n.uid for n in ordered])
    uids, values = quantize_u16(vector)
    return DeployedWeights(vector, uids, values, VERSION_KEY, "", [float(s) for s in scores], len(window),
                           burn_uid(settings, uid_of, settings.burn_rate), zeroed, no_ip)

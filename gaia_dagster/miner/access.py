"""Which validators the reference miner serves, and how fast: its access policy and rate limit.

Access rule: a validator is served when its hotkey is on the allowlist, or when the stake table
lists it with at least ``min_stake``. One of the two is always in force; a miner with neither
refuses to start, unless ``open_access`` (``--dev-open-access``) says it is a development miner that
serves any correctly signed hotkey.

The stake table is a JSON object ``{"<validator ss58>": <stake>, ...}`` (e.g. written from the
metagraph by whatever the operator runs); it is re-read when the file changes, and a table that
cannot be read keeps the last good one (at start, it stops the miner). The miner itself never talks
to the chain.

Rate rule: each served validator hotkey has its own token bucket (``rate_per_s`` tokens a second,
at most ``burst``); a request without a token is refused 429, so a flood from one hotkey spends only
its own tokens and never another validator's.
"""

from __future__ import annotations

import json
import logging
import math
import os
import threading
import time
from pathlib import Path
from typing import Iterable

log = logging.getLogger(__name__)

DEFAULT_MIN_STAKE = 1000.0
DEFAULT_RATE_PER_S = 20.0
DEFAULT_BURST = 100.0


class Refused(Exception):
    """A request failed the guard: ``status`` is the HTTP status to answer (400/401/403/429)."""

    def __init__(self, status: int, reason: str, retry_after_s: float | None = None):
        super().__init__(f"HTTP {status}: {reason}")
        self.status = status
        self.reason = reason
        self.retry_after_s = retry_after_s


class AccessConfigError(ValueError):
    """The miner has no usable access policy (no allowlist, no stake table, no development flag)."""


def read_stake_table(path: Path) -> dict[str, float]:
    """A stake table file: a JSON object of validator hotkey -> stake (a finite number >= 0)."""
    try:
        data = json.loads(Path(path).read_text())
    except (OSError, ValueError) as exc:
        raise AccessConfigError(f"stake table {path}: cannot be read: {type(exc).__name__}: {exc}") from None
    if not isinstance(data, dict):
        raise AccessConfigError(f"stake table {path}: expected a JSON object of hotkey -> stake")
    table = {}
    for hotkey, stake in data.items():
        if isinstance(stake, bool) or not isinstance(stake, (int, float)) or not math.isfinite(stake) or stake < 0:
            raise AccessConfigError(f"stake table {path}: the stake of {hotkey!r} is {stake!r}, not a number >= 0")
        table[str(hotkey)] = float(stake)
    return table


class AccessPolicy:
    """The access rule of the module docstring; ``check`` raises ``Refused`` (403) for a validator
    the miner does not serve."""

    def __init__(self, allowlist: Iterable[str] | None = None, stake_table: Path | None = None,
                 min_stake: float = DEFAULT_MIN_STAKE, open_access: bool = False, miner: str = "this miner"):
        self.allowlist = frozenset(allowlist or ())
        self.stake_table = Path(stake_table) if stake_table else None
        self.min_stake = float(min_stake)
        self.open_access = bool(open_access)
        self.miner = miner
        if not (self.allowlist or self.stake_table or self.open_access):
            raise AccessConfigError(
                f"miner {miner}: no validator allowlist (--allow-validator) and no stake table (--stake-table): "
                f"it would serve any self-made hotkey. Give one, or --dev-open-access for a development miner")
        self._stakes: dict[str, float] = {}
        self._stamp: tuple[int, int] | None = None
        self._lock = threading.Lock()
        if self.stake_table is not None:
            self._stakes = read_stake_table(self.stake_table)
            self._stamp = self._file_stamp()

    def _file_stamp(self) -> tuple[int, int] | None:
        try:
            st = os.stat(self.stake_table)
        except OSError:
            return None
        return st.st_mtime_ns, st.st_size

    def stakes(self) -> dict[str, float]:
        """The stake table, re-read when its file changed (a bad new file keeps the last good table)."""
        if self.stake_table is None:
            return {}
        stamp = self._file_stamp()
        with self._lock:
            if stamp is not None and stamp != self._stamp:
                self._stamp = stamp
                try:
                    self._stakes = read_stake_table(self.stake_table)
                except AccessConfigError as exc:
                    log.warning("%s; keeping the last good stake table", exc)
            return self._stakes

    def check(self, validator: str) -> None:
        """Access rule: allowlisted, or staked at least ``min_stake``, or a development miner."""
        if self.open_access or validator in self.allowlist:
            return
        stake = self.stakes().get(validator)
        if stake is not None and stake >= self.min_stake:
            return
        why = "not in this miner's allowlist"
        if self.stake_table is not None:
            why += f" and its stake {stake or 0:g} is below {self.min_stake:g}"
        raise Refused(403, f"validator {validator} is {why}")


class TokenBuckets:
    """The rate rule of the module docstring: one token bucket per validator hotkey."""

    def __init__(self, rate_per_s: float = DEFAULT_RATE_PER_S, burst: float = DEFAULT_BURST):
        if rate_per_s <= 0 or burst < 1:
            raise AccessConfigError(f"rate limit {rate_per_s}/s, burst {burst}: need a rate > 0 and a burst >= 1")
        self.rate_per_s = float(rate_per_s)
        self.burst = float(burst)
        self._buckets: dict[str, tuple[float, float]] = {}
        self._lock = threading.Lock()

    def take(self, validator: str, now: float | None = None) -> float | None:
        """Spend one of ``validator``'s tokens: None when it had one, else the seconds until it will."""
        now = time.monotonic() if now is None else now
        with self._lock:
            tokens, last = self._buckets.get(validator, (self.burst, now))
            tokens = min(self.burst, tokens + (now - last) * self.rate_per_s)
            if tokens >= 1.0:
                self._buckets[validator] = (tokens - 1.0, now)
                return None
            self._buckets[validator] = (tokens, now)
            return (1.0 - tokens) / self.rate_per_s

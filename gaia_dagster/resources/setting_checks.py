"""Numeric settings checked when the code location loads.

Settings still reach resources through ``EnvVar`` at run time (``resources/settings.py``); this
only refuses to load a code location whose numeric ``GAIA_*`` variables could never work: not a
number, NaN, infinite, or outside the setting's range (a timing of 0 or less would make every
request fail or every retry spin). Every bad variable is named at once, with its allowed range.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from typing import Mapping


@dataclass(frozen=True)
class NumericSetting:
    """``name`` must parse as ``kind`` (int or float) and lie in [low, high], or (low, high]
    when ``low_open``."""

    name: str
    kind: type
    low: float
    high: float
    low_open: bool = False

    def allowed(self) -> str:
        kind = "a whole number" if self.kind is int else "a finite number"
        high = "" if math.isinf(self.high) else f", at most {self.high:g}"
        return f"{kind} {'>' if self.low_open else '>='} {self.low:g}{high}"

    def problem(self, text: str) -> str | None:
        """Why ``text`` is not a valid value (None when it is)."""
        try:
            value = self.kind(text.strip())
        except ValueError:
            return f"{self.name}={text!r} is not {self.allowed()}"
        if isinstance(value, float) and not math.isfinite(value):
            return f"{self.name}={text!r} is not {self.allowed()}"
        below = value <= self.low if self.low_open else value < self.low
        if below or value > self.high:
            return f"{self.name}={text!r} is out of range: {self.allowed()}"
        return None


INF = math.inf
NUMERIC_SETTINGS: tuple[NumericSetting, ...] = (
    NumericSetting("GAIA_RETRY_SCALE", float, 0, 1000, low_open=True),
    NumericSetting("GAIA_MINER_TIMEOUT_S", float, 0, 3600, low_open=True),
    NumericSetting("GAIA_ANSWER_DEADLINE_S", float, 0, 3600, low_open=True),
    NumericSetting("GAIA_SLOW_STORE_GRACE_S", float, 0, 3600, low_open=True),
    NumericSetting("GAIA_SLOW_STORE_BPS", float, 0, 1e12, low_open=True),
    NumericSetting("GAIA_ERA5_DELAY_H", int, 0, 24 * 30, low_open=True),
    NumericSetting("GAIA_RESOLUTION", float, 0, 30, low_open=True),
    NumericSetting("GAIA_SENSOR_INTERVAL_S", float, 1, 86400),
    NumericSetting("GAIA_NETUID", int, 0, 65535),
    NumericSetting("GAIA_WEIGHTS_VERSION_KEY", int, 0, 2 ** 64 - 1),
    NumericSetting("GAIA_MIN_VALIDATOR_STAKE", float, 0, INF),
    NumericSetting("GAIA_WEIGHTS_INTERVAL_BLOCKS", int, 1, 100_000),
    NumericSetting("GAIA_CACHE_MAX_GB", float, 0, 1_000_000, low_open=True),
)


class SettingError(ValueError):
    """One or more settings cannot work; the message names each variable and its allowed range."""


def check_numeric_settings(environ: Mapping[str, str] = os.environ) -> None:
    """Refuse every set (non-blank) numeric setting that is not a valid value, all named at once."""
    problems = [p for s in NUMERIC_SETTINGS if environ.get(s.name, "").strip()
                for p in [s.problem(environ[s.name])] if p]
    if problems:
        raise SettingError("gaia-dagster cannot load with these settings: " + "; ".join(problems))

"""How often the sensors look: their production intervals, compressed by one setting."""

from __future__ import annotations

import os


def sensor_interval(production_s: int) -> int:
    """Rule: a sensor waits its production interval between ticks, unless ``GAIA_SENSOR_INTERVAL_S``
    sets one interval for every sensor (the demo and the benchmarks compress a day into minutes).
    Read when the code location loads: a sensor's interval is part of its definition."""
    value = os.environ.get("GAIA_SENSOR_INTERVAL_S", "").strip()
    if not value:
        return production_s
    try:
        seconds = int(float(value))
    except ValueError:
        raise ValueError(f"GAIA_SENSOR_INTERVAL_S must be a number of seconds, not {value!r}") from None
    if seconds < 1:
        raise ValueError(f"GAIA_SENSOR_INTERVAL_S must be at least 1 second, not {value!r}")
    return seconds

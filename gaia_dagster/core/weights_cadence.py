"""When the validator sets weights: Gaia's cadence on the chain's clock.

Gaia's validator checks, in its main loop, how many blocks have passed since the chain last
recorded weights from it (``LastUpdate`` of its UID) and sets them once at least 250 have passed
and the subnet's ``WeightsSetRateLimit`` allows; not when scores arrive. Slots here:

- The interval is ``max(250, rate limit)`` blocks.
- Slot k after the last weights (k >= 1) opens at ``last + k * interval``. One attempt per slot:
  an attempt the chain refuses, or that fails, is retried at the next slot; a success moves
  ``last`` and starts the count again.
- Without a chain (the embedded default) the block is simulated from the clock, 12 s a block, and
  ``last`` is the block of the validator's own last recorded weights (a slot that had nothing to
  set counts as recorded; a failed one does not).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

GAIA_INTERVAL_BLOCKS = 250
BLOCK_SECONDS = 12


@dataclass(frozen=True)
class WeightSlot:
    """A slot: ``index`` intervals after the weights recorded at block ``last``, open at ``block``."""

    last: int
    index: int
    block: int

    @property
    def key(self) -> str:
        """Unique per slot: one attempt each, whatever the number of sensor ticks inside it."""
        return f"weights|after-{self.last}|slot-{self.index}"


def weights_interval(rate_limit: int, interval: int = GAIA_INTERVAL_BLOCKS) -> int:
    """Blocks between two weight settings: Gaia's 250, or the subnet's rate limit when longer."""
    return max(int(interval), int(rate_limit or 0), 1)


def open_slot(block: int, last: int | None, interval: int) -> WeightSlot | None:
    """The slot open at ``block`` (None before the first one opens). With no weights ever
    recorded a slot is open at once: the one holding ``block`` on the grid of ``interval``
    blocks from 0, so a first attempt that fails is retried one interval later."""
    if last is None:
        return WeightSlot(-1, block // interval, block - block % interval)
    index = (block - last) // interval
    return WeightSlot(last, index, last + index * interval) if index >= 1 else None


def simulated_block(now: datetime) -> int:
    """The block on a chain of 12-second blocks started at the Unix epoch (no chain configured)."""
    return int(now.timestamp()) // BLOCK_SECONDS

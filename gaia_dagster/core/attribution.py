"""Whose fault a failed request is: the miner's, or the validator's own (issue 18).

A request that gets no usable answer can fail on either side: the miner is down, or the validator
is (its identity refused by every miner, a timeout setting nothing can meet, its network). One miner
alone cannot tell the two apart; the miners of a day together can.
"""

from __future__ import annotations

MIN_MINERS_FOR_DOUBT = 2


def validator_suspected(miners_tried: int, miners_through: int) -> bool:
    """Rule: when at least two different miners of a day were asked and not one of them accepted,
    the fault is presumed the validator's, and no miner's job is failed for it. With a single miner
    asked, or once any miner of the day accepted, a failure is that miner's."""
    return miners_tried >= MIN_MINERS_FOR_DOUBT and miners_through == 0


def validator_side_note(what: str, miners_tried: int) -> str:
    """How a suspected validator-side fault is recorded on a job and shown to the operator."""
    return (f"{what}: none of the {miners_tried} miners asked today accepted a request, so the fault is "
            f"presumed to be the validator's own (its identity, timeout settings or network), not the "
            f"miner's; the job is not failed for it")

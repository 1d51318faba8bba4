"""What can go wrong talking to a miner, in a module of its own: the bounded store reader raises
``SlowStore`` without importing the HTTP client, so ``gaia-dagster score`` (which reads stores on
disk through it) does not pay for httpx and Fiber at start-up. ``resources.miner_client`` exports
both, where callers import them from."""

from __future__ import annotations


class MinerClientError(Exception):
    """A miner could not be reached or answered something unusable."""


class SlowStore(MinerClientError):
    """A store read fell below the fast lane's floor (``store_reader.RateFloor``): not the miner's
    fault, and no attempt spent; the job is read again in the slow lane."""

"""Per-stage retry and backoff (requirement: weather-pipeline-refactor, section 6.1)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta


@dataclass(frozen=True)
class StageRetry:
    """How often a per-miner stage is attempted and how long to wait before attempt n+1."""

    stage: str
    max_attempts: int
    backoff_s: tuple[float, ...]

    def delay_after(self, attempt: int) -> timedelta:
        """Backoff after the ``attempt``-th failure (1-based); the last value repeats."""
        index = min(max(attempt, 1), len(self.backoff_s)) - 1
        return timedelta(seconds=self.backoff_s[index])

    def exhausted(self, attempts: int) -> bool:
        """True when ``attempts`` attempts have been used and none may follow."""
        return attempts >= self.max_attempts

    def next_attempt_at(self, now: datetime, attempts: int) -> datetime:
        """When the next attempt is due after ``attempts`` failed attempts."""
        return now + self.delay_after(attempts)

    def scaled(self, factor: float) -> "StageRetry":
        """The same policy with every delay multiplied by ``factor`` (compressed time in the demo)."""
        return StageRetry(self.stage, self.max_attempts, tuple(b * factor for b in self.backoff_s))


DEFAULT_RETRIES: dict[str, StageRetry] = {
    "query": StageRetry("query", 3, (60, 300, 900)),
    "poll": StageRetry("poll", 10, (300,)),
    "day1": StageRetry("day1", 3, (300, 600, 1200)),
    "era5": StageRetry("era5", 5, (3600,)),
}


def retry_policies(scale: float = 1.0) -> dict[str, StageRetry]:
    """The per-stage policies, with delays scaled (1.0 in production)."""
    return {name: policy.scaled(scale) for name, policy in DEFAULT_RETRIES.items()}

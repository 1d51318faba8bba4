"""Duplicate counters in Prometheus format (requirement: dedup-defense-in-depth, layer 3).

``duplicates_detected_total`` counts duplicate attempts that were stopped, by stage;
``duplicates_allowed_total`` counts duplicates that got through and must stay 0. The counts live in
the validator DB (every Dagster run is its own process), so the exposition reads them from there.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily

from gaia_dagster.db.repository import ValidatorRepository

STAGES = ("registry", "forecast_request", "scores")


class DuplicateCounters:
    """A Prometheus collector over the validator DB's duplicate events."""

    def __init__(self, repo: ValidatorRepository):
        self.repo = repo

    def collect(self):  # noqa: ANN201
        counts = self.repo.duplicate_counts()
        stages = sorted(set(STAGES) | {stage for stage, _ in counts})
        for outcome in ("detected", "allowed"):
            family = CounterMetricFamily(f"duplicates_{outcome}", f"Duplicate attempts {outcome}, by stage",
                                         labels=["stage"])
            for stage in stages:
                family.add_metric([stage], counts.get((stage, outcome), 0))
            yield family


def prometheus_text(repo: ValidatorRepository) -> str:
    """The counters in the Prometheus text exposition format."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(DuplicateCounters(repo))
    return generate_latest(registry).decode()


def counter_totals(repo: ValidatorRepository) -> dict[str, int]:
    """Totals by stage and outcome, for asset metadata."""
    counts = repo.duplicate_counts()
    return {f"duplicates_{outcome}_total[{stage}]": counts.get((stage, outcome), 0)
            for stage in sorted(set(STAGES) | {s for s, _ in counts}) for outcome in ("detected", "allowed")}

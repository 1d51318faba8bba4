"""Metadata renderings of scores for the Dagster UI (tables in markdown)."""


import math
from typing import Any, Sequence

from dagster import MetadataValue


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return "—" if math.isnan(value) else f"{value:.4g}"
    return "—" if value is None else str(value)


def markdown_table(rows: Sequence[dict[str, Any]], columns: Sequence[str]) -> MetadataValue:
    """A markdown table of ``rows`` restricted to ``columns``."""
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(_fmt(row.get(c)) for c in columns) + " |" for row in rows]
    return MetadataValue.md("\n".join(lines))


def metrics_table(rows: Sequence[dict[str, Any]]) -> MetadataValue:
    """Per (variable, level, lead) metrics of one miner."""
    return markdown_table(rows, ["variable", "level", "lead_hours", "rmse", "bias", "acc", "skill",
                                 "clone_distance", "clone_penalty", "score"])

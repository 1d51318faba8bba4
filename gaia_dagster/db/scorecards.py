"""The validator DB's part in regional scorecards (issue 19, ``core.scoring.regions``): each scored
response's regional rows, recorded with its score, and a run's rows read back. All SQL of it lives
here."""

from __future__ import annotations

from typing import Any, Collection, Mapping, Sequence

from sqlalchemy import select, tuple_

from gaia_dagster.db.models import MinerResponse, RegionalScore
from gaia_dagster.db.repository import ValidatorRepository, _finite_or_none, now_utc

REGIONAL_METRICS = ("rmse", "bias", "acc", "skill", "reference_rmse", "skill_gfs", "gfs_rmse")
_KEY = ("response_id", "score_type", "region", "lead_hours", "variable", "level")


def _values(response_id: int, score_type: str, row: dict[str, Any], now) -> dict[str, Any]:  # noqa: ANN001
    """One complete row: level 0 at the surface, non-finite metrics as NULL."""
    values = {"response_id": response_id, "score_type": score_type, "region": row["region"],
              "lead_hours": int(row["lead_hours"]), "variable": row["variable"], "level": int(row.get("level") or 0),
              "created_at": now}
    for metric in REGIONAL_METRICS:
        value = row.get(metric)
        values[metric] = None if value is None else _finite_or_none(float(value))
    return values


def record_regional_scores(repo: ValidatorRepository, response_id: int, score_type: str,
                           rows: Sequence[dict[str, Any]]) -> int:
    """Store a response's regional rows under their unique key in one transaction; a re-score
    replaces values, never adds rows."""
    if not rows:
        return 0
    now = now_utc()
    values = [_values(response_id, score_type, row, now) for row in rows]
    with repo.session() as s, s.begin():
        repo.upsert_many(s, RegionalScore, values, _KEY, (*REGIONAL_METRICS, "created_at"))
    return len(values)


def run_regional_fields(repo: ValidatorRepository, run_id: int, score_type: str = "era5") -> dict[str, list[tuple[str, int]]]:
    """The (variable, level) fields each miner of a run holds regional rows of, sorted: what a
    scorecard picks its fields from, without reading the rows."""
    query = (select(MinerResponse.miner_hotkey, RegionalScore.variable, RegionalScore.level).distinct()
             .join(RegionalScore, RegionalScore.response_id == MinerResponse.id)
             .where(MinerResponse.run_id == run_id, RegionalScore.score_type == score_type))
    out: dict[str, list[tuple[str, int]]] = {}
    with repo.session() as s:
        for hotkey, variable, level in s.execute(query):
            out.setdefault(hotkey, []).append((variable, level))
    return {hotkey: sorted(fields) for hotkey, fields in out.items()}


_ROW_COLUMNS = ("region", "lead_hours", "variable", "level", *REGIONAL_METRICS)


def run_regional_scores(repo: ValidatorRepository, run_id: int, score_type: str = "era5",
                        fields: Mapping[str, Collection[tuple[str, int]]] | None = None) -> dict[str, list[dict]]:
    """Every regional row of a run's responses of ``score_type``, by miner hotkey, ordered by
    region, variable, level and lead; with ``fields`` (hotkey: its (variable, level) fields), only
    those miners' rows of those fields."""
    query = (select(MinerResponse.miner_hotkey, *(getattr(RegionalScore, c) for c in _ROW_COLUMNS))
             .join(RegionalScore, RegionalScore.response_id == MinerResponse.id)
             .where(MinerResponse.run_id == run_id, RegionalScore.score_type == score_type)
             .order_by(MinerResponse.miner_hotkey, RegionalScore.region, RegionalScore.variable, RegionalScore.level,
                       RegionalScore.lead_hours))
    if fields is not None:
        wanted = {hotkey: set(held) for hotkey, held in fields.items()}
        query = query.where(tuple_(RegionalScore.variable, RegionalScore.level).in_(sorted(set().union(*wanted.values()))))
    out: dict[str, list[dict]] = {}
    with repo.session() as s:
        for hotkey, *values in s.execute(query):
            if fields is None or (values[2], values[3]) in wanted.get(hotkey, ()):
                out.setdefault(hotkey, []).append(dict(zip(_ROW_COLUMNS, values)))
    return out

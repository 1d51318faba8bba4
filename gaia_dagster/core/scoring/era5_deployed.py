"""The ERA5 lead score as the deployed validator (Gaia v2.9.96) computes it, from per-field rows.

Per entry of the variable list and lead (``variable_summary``): a single-field entry (surface, or
one level such as ``t850``) keeps its field's RMSE, ACC and skill; an all-levels entry is collapsed
over its levels with the half-thickness weights w_l first: RMSE = sqrt(sum w_l MSE_l), ACC =
sum w_l ACC_l (any NaN level ACC leaves the variable with its RMSE only at that lead: Gaia raises
on it after storing the RMSE), skill = sum w_l skill_l with a NaN level skill counting 0. A level
skill whose climatology is perfect is 1 when the forecast is too, else -inf (clamped to 0). A
single-field entry whose ACC is NaN fails the miner's ERA5 scoring; a non-finite skill of one is
left out.

Per lead (``deployed_lead_score``): every entry must be present, else the miner's ERA5
scoring fails; skill term = mean clamp(skill, 0, 1), ACC term = mean (ACC + 1) / 2, RMSE term =
mean 1 / (1 + RMSE / ref) with ref the median ``sorted(rmse)[n // 2]`` of the miner's own
per-variable RMSEs at that lead (ratio 1 when ref <= 0); 0.6 / 0.3 / 0.1 of them (0.6 / 0.4 with no
RMSE, the one present term alone otherwise), clamped to [0, 1].
"""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass
from typing import Iterable, Sequence

import numpy as np

from gaia_dagster.core.scoring.metrics import level_weights
from gaia_dagster.core.scoring.variables import VariableEntry, entry_names


class Era5ScoringFailed(Exception):
    """The miner gets no ERA5 score (deployed rules: NaN surface ACC, missing variable, ...)."""


@dataclass(frozen=True)
class VariableSummary:
    variable: str
    rmse: float
    acc: float | None
    skill: float | None


def _level_skill(skill: float, rmse: float, reference_rmse: float) -> float:
    """A level's skill; with a perfect climatology: 1 if the forecast is perfect too, else -inf."""
    if reference_rmse == 0:
        return 1.0 if rmse == 0 else -math.inf
    return skill


def variable_summary(rows: Sequence, name: str, all_levels: bool) -> VariableSummary:  # noqa: ANN001
    """One entry (``name``) at one lead from its Era5Metric rows (see the module doc)."""
    variable = name
    if not all_levels:
        m = rows[0]
        if not math.isfinite(m.acc):
            raise Era5ScoringFailed(f"{variable}: ACC is not finite")
        skill = _level_skill(m.skill, m.rmse, m.reference_rmse)
        return VariableSummary(variable, m.rmse, m.acc, skill if math.isfinite(skill) else None)
    rows = sorted(rows, key=lambda m: m.level)
    w = level_weights([m.level for m in rows])
    rmse = math.sqrt(float(np.sum(w * np.array([m.rmse ** 2 for m in rows]))))
    accs = np.array([m.acc for m in rows], dtype=np.float64)
    if np.isnan(accs).any():
        return VariableSummary(variable, rmse, None, None)
    skills = np.nan_to_num(np.array([_level_skill(m.skill, m.rmse, m.reference_rmse) for m in rows]), nan=0.0)
    return VariableSummary(variable, rmse, float(np.sum(w * accs)), float(np.sum(w * skills)))


def rmse_reference(rmses: Sequence[float]) -> float:
    """The deployed RMSE reference: the median ``sorted(rmse)[n // 2]`` of the miner's own RMSEs."""
    return sorted(rmses)[len(rmses) // 2] if rmses else 1.0


def combine_terms(skill: float | None, acc: float | None, rmse: float | None) -> float:
    """0.6 skill + 0.3 ACC + 0.1 RMSE terms; 0.6 / 0.4 without RMSE; one term alone; clamped."""
    if skill is not None and acc is not None:
        score = 0.6 * skill + 0.4 * acc if rmse is None else 0.6 * skill + 0.3 * acc + 0.1 * rmse
    else:
        score = next((t for t in (skill, acc, rmse) if t is not None), 0.0)
    score = max(0.0, min(1.0, float(score)))
    if not math.isfinite(score):
        raise Era5ScoringFailed("non-finite lead score")
    return score


def lead_summaries(metrics: Iterable, entries: Sequence[VariableEntry]) -> list[VariableSummary]:  # noqa: ANN001
    """One lead's field rows summarised per entry of the variable list (Gaia's stored era5_rmse,
    era5_acc and era5_skill rows of that lead); a missing entry fails the miner's ERA5 scoring."""
    of_field = entry_names(entries)
    by_entry: dict[str, list] = defaultdict(list)
    for m in metrics:
        by_entry[of_field[(m.variable, m.level)].name].append(m)
    missing = [e.name for e in entries if e.name not in by_entry]
    if missing:
        raise Era5ScoringFailed(f"variables {', '.join(missing)} missing")
    return [variable_summary(by_entry[e.name], e.name, e.all_levels) for e in entries]


def deployed_lead_score(summaries: Sequence[VariableSummary]) -> float:
    """The deployed per-lead score from one lead's ``lead_summaries`` (see the module doc)."""
    skills = [min(1.0, max(0.0, s.skill)) for s in summaries if s.skill is not None]
    accs = [(s.acc + 1.0) / 2.0 for s in summaries if s.acc is not None]
    rmses = [s.rmse for s in summaries]
    ref = rmse_reference(rmses)
    rmse_terms = [1.0 / (1.0 + (e / ref if ref > 0 else 1.0)) for e in rmses]
    mean = lambda xs: sum(xs) / len(xs) if xs else None  # noqa: E731
    return combine_terms(mean(skills), mean(accs), mean(rmse_terms))

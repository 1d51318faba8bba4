"""Copies by content (issue 18; the rule is ``core.copies``): fingerprint a forecast at verification,
and refuse every miner of a copy pair alike once both forecasts of the pair are in.

Where the verdict lands: a copy pair is a function of the run's fingerprints, so it exists as soon
as the second forecast of the pair is verified. That forecast is refused at its verification; the
first is refused at its next stage (day-1, or its first ERA5 lead when its day-1 was already
scored), so both end failed whichever arrived first. ``checks/copies.py`` shows every pair.
"""

from __future__ import annotations

import numpy as np
import xarray as xr

from gaia_dagster.core.contract import LEVEL_VARIABLES, N_STEPS, PRESSURE_LEVELS, Grid
from gaia_dagster.core.copies import (
    CopyPair, FieldRef, FingerprintPlan, copy_pairs, copy_reason, fingerprint_plan, pairs_with, run_seed,
    sample_plane,
)
from gaia_dagster.db.copies import record_fingerprint, run_fingerprints
from gaia_dagster.db.repository import ResponseRecord, ValidatorRepository
from gaia_dagster.stages.attempts import ForecastRejected, who


def candidate_fields(variables: tuple[str, ...]) -> list[FieldRef]:
    """Every field a fingerprint may sample: each required variable, at each of its levels, at
    each of the 40 time steps (a copier cannot know which will be read)."""
    return [FieldRef(variable, level, t) for variable in sorted(variables)
            for level in (PRESSURE_LEVELS if variable in LEVEL_VARIABLES else (None,)) for t in range(N_STEPS)]


def plan_for(repo: ValidatorRepository, row: ResponseRecord, grid: Grid, variables: tuple[str, ...]) -> FingerprintPlan:
    """The run's fingerprint plan: the same for every miner of the run (``core.copies.run_seed``)."""
    run = repo.run_by_id(row.run_id)
    seed = run_seed(run.id, run.run_key, run.created_at.isoformat())
    return fingerprint_plan(seed, candidate_fields(variables), grid.lat, grid.lon)


def plan_chunks(plan: FingerprintPlan) -> list[tuple[str, tuple[int, ...]]]:
    """The chunks (array, leading indices) the fingerprint reads: one plane per sampled field."""
    return [(f.variable, (f.time_index,) if f.level is None else (f.time_index, PRESSURE_LEVELS.index(f.level)))
            for f in plan.fields]


def fingerprint_dataset(dataset: xr.Dataset, plan: FingerprintPlan, row: ResponseRecord) -> np.ndarray:
    """A verified forecast's fingerprint (fields x points); fields are found by name, time step and
    level value, points by latitude and longitude value. A store it cannot sample is the miner's."""
    try:
        lat, lon = np.asarray(dataset["lat"].values), np.asarray(dataset["lon"].values)
        out = []
        for field in plan.fields:
            da = dataset[field.variable].isel(time=field.time_index)
            if field.level is not None:
                da = da.sel(pressure_level=field.level)
            out.append(sample_plane(np.asarray(da.transpose("lat", "lon").values), lat, lon, plan))
        return np.stack(out)
    except (KeyError, ValueError, IndexError) as exc:
        raise ForecastRejected(f"{who(row)}: the forecast cannot be sampled for the copy check: {exc}") from exc


def record(repo: ValidatorRepository, row: ResponseRecord, plan: FingerprintPlan, samples: np.ndarray) -> None:
    """Keep the fingerprint of a verified forecast (once per job)."""
    record_fingerprint(repo, row.id, row.run_id, row.miner_hotkey, plan.seed, samples)


def run_copy_pairs(repo: ValidatorRepository, run_id: int) -> list[CopyPair]:
    """The run's copy pairs, from the fingerprints recorded so far."""
    return copy_pairs(run_fingerprints(repo, run_id))


def refuse_copy(repo: ValidatorRepository, row: ResponseRecord) -> None:
    """Copy rule: a miner in a copy pair of its run is refused (``ForecastRejected``), naming the
    other miner, the distance and the threshold; the same for both miners of the pair."""
    reason = copy_reason(row.miner_hotkey, pairs_with(row.miner_hotkey, run_fingerprints(repo, row.run_id)))
    if reason:
        raise ForecastRejected(f"{who(row)}: {reason}")

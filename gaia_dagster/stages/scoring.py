"""Stages ``day1`` and ``era5`` and the leaderboard: score the forecast the miner served.

Fields are streamed one (variable, level, lead) at a time from the verified local mirror of the
miner's store, so memory stays at a few fields whatever the forecast size. Truth, reference and
climatology come from the source protocols, cached on disk once per run.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import xarray as xr

from gaia_dagster.core.retry import DEFAULT_RETRIES, StageRetry
from gaia_dagster.core.contract import (
    ALL_VARIABLES, DAY1_LEAD_HOURS, ERA5_LEAD_HOURS, LEVEL_VARIABLES, PRESSURE_LEVELS, Grid, time_index,
)
from gaia_dagster.core.scoring.aggregate import LOOKBACK_DAYS, miner_weights, overall_score
from gaia_dagster.core.scoring.fused import ReferenceField, fused_metrics
from gaia_dagster.core.scoring.metrics import cos_lat_weights
from gaia_dagster.core.scoring.day1 import DAY1_VARIABLES, Day1Field, score_day1
from gaia_dagster.core.scoring.era5 import (
    Era5Metric, era5_coverage_failure, era5_score_from_metrics, verification_failure,
)
from gaia_dagster.db.repository import ResponseRecord, ValidatorRepository
from gaia_dagster.resources.miner_client import MinerClient
from gaia_dagster.resources.sources import WeatherSources, cache_path, cached, ensure_cached
from gaia_dagster.core.states import ERA5_SCORED_STATUSES
from gaia_dagster.core.scoring.era5_leads import is_complete, leads_to_score, progressive_score
from gaia_dagster.stages.attempts import DAY1, ERA5, ForecastRejected, StageRefused, StageSpec, is_past, run_attempt, who
from gaia_dagster.core.manifest import PinnedManifest
from gaia_dagster.stages.forecast import fetch_fields


@dataclass
class StageScore:
    outcome: str  # scored | already_scored
    score: float | None
    rows: list[dict[str, Any]] = field(default_factory=list)
    lead_scores: dict[int, float] = field(default_factory=dict)
    clone_clamped: bool = False
    complete: bool = True   # False: progressive ERA5 scored the leads due so far, more will come


# -- reference data ---------------------------------------------------------------------------
def seed_gfs(sources: WeatherSources, t0: datetime) -> dict[str, Path]:
    """Cache the GFS analysis at each day-1 lead and the T0 forecast at that lead (singleton stage)."""
    gfs, root = sources.gfs(), sources.cache_root()
    paths = {}
    for lead in DAY1_LEAD_HOURS:
        valid = t0 + timedelta(hours=lead)
        paths[f"analysis_{lead:03d}"] = _cache_gfs_analysis(gfs, root, valid)
        paths[f"forecast_f{lead:03d}"] = _cache_gfs_forecast(gfs, root, t0, lead)
    return paths


def _cache_gfs_analysis(gfs, root: Path, valid: datetime) -> Path:  # noqa: ANN001
    path = cache_path(root, "gfs", valid, "analysis")
    ensure_cached(path, lambda: gfs.analysis(valid))
    return path


def _cache_gfs_forecast(gfs, root: Path, t0: datetime, lead: int) -> Path:  # noqa: ANN001
    path = cache_path(root, "gfs", t0, f"forecast_f{lead:03d}")
    ensure_cached(path, lambda: gfs.forecast(t0, lead))
    return path


def seed_era5(sources: WeatherSources, t0: datetime, leads: Sequence[int] = ERA5_LEAD_HOURS) -> dict[int, Path]:
    """Cache ERA5 at the valid time of each of ``leads`` (one entry per valid time); a time not yet
    available raises LookupError."""
    era5, root = sources.era5(), sources.cache_root()
    paths = {}
    for lead in leads:
        valid = t0 + timedelta(hours=lead)
        path = cache_path(root, "era5", valid, "truth")
        ensure_cached(path, lambda valid=valid: era5.truth(valid))
        paths[lead] = path
    return paths


def _climatology(sources: WeatherSources, valid: datetime) -> xr.Dataset:
    clim = sources.climatology()
    return cached(cache_path(sources.cache_root(), "climatology", valid, "climatology"),
                  lambda: clim.climatology(valid))


def _plane(ds: xr.Dataset, variable: str, level: int | None) -> np.ndarray:
    """One (lat, lon) plane of a variable, at a level for pressure-level variables."""
    da = ds[variable]
    if level is not None:
        da = da.sel(pressure_level=level)
    return np.asarray(da.values)


def _forecast_plane(ds: xr.Dataset, lead: int, variable: str, level: int | None) -> np.ndarray:
    return _plane(ds.isel(time=time_index(lead)), variable, level)


def _fields_for(variable: str) -> list[int | None]:
    return list(PRESSURE_LEVELS) if variable in LEVEL_VARIABLES else [None]


# -- day-1 ------------------------------------------------------------------------------------
def run_scoring_stage(repo: ValidatorRepository, row: ResponseRecord, spec: StageSpec, retry: StageRetry, score,
                      dagster_run_id: str | None = None) -> StageScore:  # noqa: ANN001
    """The shape every scoring stage shares (claimed attempt, strict transitions, see ``attempts``):
    score, store the rows under their unique keys, ``working -> done``. A scored job answers
    ``already_scored`` with the score it holds."""
    def finish(current: ResponseRecord, result: StageScore) -> None:
        totals = [{"lead_hours": lead, "variable": "*", "level": 0, "score": s} for lead, s in result.lead_scores.items()]
        repo.record_scores(current.id, spec.name,
                           [*result.rows, *totals, {"lead_hours": 0, "variable": "*", "level": 0, "score": result.score}])
        if result.complete or spec.partial is None:
            repo.transition_response(current.id, spec.working, spec.done, dagster_run_id, error=None)
        else:   # an arrival scored: rest until the next lead, with a fresh set of attempts for it
            repo.transition_response(current.id, spec.working, spec.partial, dagster_run_id, error=None,
                                     **{f"{spec.name}_attempts": 0})

    def already_done(current: ResponseRecord) -> StageScore:
        return StageScore("already_scored", repo.total_score(current.id, spec.name))

    return run_attempt(repo, row, spec, retry, lambda current: score(), finish, already_done, dagster_run_id)


def score_day1_stage(repo: ValidatorRepository, client: MinerClient, sources: WeatherSources,
                     row: ResponseRecord, dagster_run_id: str | None = None,
                     retry: StageRetry | None = None) -> StageScore:
    """Score a verified forecast at lead 12 h against the GFS analysis (forecast_ready -> day1_scored)."""
    return run_scoring_stage(repo, row, DAY1, retry or DEFAULT_RETRIES["day1"],
                             lambda: _day1(client, sources, row, repo.pinned_manifest(row.id)), dagster_run_id)


def _day1(client: MinerClient, sources: WeatherSources, row: ResponseRecord,
          pinned: PinnedManifest | None = None) -> StageScore:
    t0 = row.gfs_init_time
    ds, _ = fetch_fields(client, row, sources.cache_root(), "day1", [time_index(h) for h in DAY1_LEAD_HOURS],
                         pinned=pinned, grid=Grid(sources.resolution))
    seed_gfs(sources, t0)
    lead = DAY1_LEAD_HOURS[0]
    valid = t0 + timedelta(hours=lead)
    root = sources.cache_root()
    truth = cached(cache_path(root, "gfs", valid, "analysis"), lambda: sources.gfs().analysis(valid))
    reference = cached(cache_path(root, "gfs", t0, f"forecast_f{lead:03d}"), lambda: sources.gfs().forecast(t0, lead))
    clim = _climatology(sources, valid)
    inputs = {}
    for variable, level in DAY1_VARIABLES:
        forecast = _forecast_plane(ds, lead, variable, level)
        problem = verification_failure(forecast, _name(variable, level))
        if problem:
            raise ForecastRejected(f"{who(row)}: {problem} at lead {lead} h")
        inputs[(variable, level)] = Day1Field(forecast, _plane(truth, variable, level),
                                              _plane(reference, variable, level), _plane(clim, variable, level))
    result = score_day1(inputs, np.asarray(truth["lat"].values), lead_hours=lead)
    rows = [_day1_row(c) for c in result.components]
    return StageScore("scored", float(result.score), rows, clone_clamped=bool(result.clone_clamped))


def _name(variable: str, level: int | None) -> str:
    return variable if level is None else f"{variable}{level}"


def _day1_row(c) -> dict[str, Any]:  # noqa: ANN001
    return {"variable": c.variable, "level": c.level or 0, "lead_hours": c.lead_hours, "rmse": c.rmse,
            "bias": c.bias, "acc": c.acc, "skill": c.skill, "clone_distance": c.clone_distance,
            "clone_penalty": c.clone_penalty}


# -- ERA5 -------------------------------------------------------------------------------------
def score_era5_stage(repo: ValidatorRepository, client: MinerClient, sources: WeatherSources,
                     row: ResponseRecord, dagster_run_id: str | None = None,
                     retry: StageRetry | None = None, due: Sequence[int] = ERA5_LEAD_HOURS) -> StageScore:
    """Progressive ERA5 (core.scoring.era5_leads): score the ``due`` leads this job has not scored
    yet, against ERA5; the score is the sum over scored leads / every required lead. The job rests
    in era5_partial until the last lead is scored (day1_scored -> era5_scoring -> era5_partial ->
    ... -> era5_scored)."""
    before = repo.lead_scores(row.run_id, ERA5.name).get(row.id, {})
    new = leads_to_score(due, before)
    if not new and not is_past(repo.response_by_id(row.id).status, ERA5.done):
        raise StageRefused(f"{who(row)}: no new ERA5 lead to score (scored {sorted(before)}, due {sorted(due)})")

    def score() -> StageScore:
        arrival = _era5(client, sources, row, repo.pinned_manifest(row.id), new)
        leads = {**before, **arrival.lead_scores}
        return StageScore("scored", progressive_score(leads), arrival.rows, leads, complete=is_complete(leads))

    return run_scoring_stage(repo, row, ERA5, retry or DEFAULT_RETRIES["era5"], score, dagster_run_id)


def _era5(client: MinerClient, sources: WeatherSources, row: ResponseRecord,
          pinned: PinnedManifest | None = None, leads: Sequence[int] = ERA5_LEAD_HOURS) -> StageScore:
    """Score ``leads`` of the miner's forecast against ERA5 (the fields of those leads only)."""
    t0 = row.gfs_init_time
    ds, _ = fetch_fields(client, row, sources.cache_root(), "era5", [time_index(h) for h in leads],
                         pinned=pinned, grid=Grid(sources.resolution))
    truths = seed_era5(sources, t0, leads)
    metrics = []
    weights = None
    for lead in leads:
        valid = t0 + timedelta(hours=lead)
        truth = cached(truths[lead], lambda: sources.era5().truth(valid))
        clim = _climatology(sources, valid)
        weights = cos_lat_weights(np.asarray(truth["lat"].values)) if weights is None else weights
        for variable in ALL_VARIABLES:
            for level in _fields_for(variable):
                forecast = _forecast_plane(ds, lead, variable, level)
                name = _name(variable, level)
                problem = verification_failure(forecast, name) or era5_coverage_failure(forecast, name)
                if problem:
                    raise ForecastRejected(f"{who(row)}: {problem} at lead {lead} h")
                ref = ReferenceField.build(_plane(truth, variable, level), _plane(clim, variable, level), weights)
                m = fused_metrics(forecast, ref)
                metrics.append(Era5Metric(variable, level, lead, m.rmse, m.bias, m.acc_centred, m.skill,
                                          m.reference_rmse))
    result = era5_score_from_metrics(metrics, leads)
    rows = [_era5_row(m) for m in result.metrics]
    return StageScore("scored", float(result.score), rows, dict(result.lead_scores))


def _era5_row(m) -> dict[str, Any]:  # noqa: ANN001
    return {"variable": m.variable, "level": m.level or 0, "lead_hours": m.lead_hours, "rmse": m.rmse,
            "bias": m.bias, "acc": m.acc, "skill": m.skill}


# -- leaderboard ------------------------------------------------------------------------------
@dataclass(frozen=True)
class LeaderboardEntry:
    rank: int
    hotkey: str
    status: str
    day1_score: float | None
    era5_score: float | None
    overall_score: float
    weight: float
    error: str | None

    def as_row(self) -> dict[str, Any]:
        return dict(self.__dict__)


def leaderboard(repo: ValidatorRepository, run_id: int, dagster_run_id: str | None = None) -> list[LeaderboardEntry]:
    """Overall score per miner (0 for a failed job), ranked, with the weights GAIA_SPEC 5 implies:
    the top-miner bonus and the mean over a 15-day look-back, normalised to sum 1. A job scored on
    some ERA5 leads so far counts with that score; the run completes once every job is final."""
    scored = []
    for r in repo.responses(run_id=run_id):
        day1 = repo.total_score(r.id, "day1")
        era5 = repo.total_score(r.id, "era5")
        overall = overall_score(era5 or 0.0, day1 or 0.0) if r.status in ERA5_SCORED_STATUSES else 0.0
        repo.record_scores(r.id, "overall", [{"lead_hours": 0, "variable": "*", "level": 0, "score": overall}])
        scored.append((r, day1, era5, overall))
    scored.sort(key=lambda t: (-t[3], t[0].miner_hotkey))
    run = repo.run_by_id(run_id)
    latest = {r.miner_hotkey: overall for r, _, _, overall in scored}
    weights = miner_weights(latest, repo.overall_scores_before(run.gfs_init_time, LOOKBACK_DAYS - 1))
    board = [LeaderboardEntry(i + 1, r.miner_hotkey, r.status, day1, era5, overall, weights.get(r.miner_hotkey, 0.0),
                              r.error)
             for i, (r, day1, era5, overall) in enumerate(scored)]
    if all(r.status in ("era5_scored", "failed") for r, *_ in scored):
        repo.advance_run(run_id, "completed", dagster_run_id)
    return board

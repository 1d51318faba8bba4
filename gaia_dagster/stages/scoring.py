"""Stages ``day1`` and ``era5`` and the leaderboard: score the forecast the miner served.

Fields are streamed one (variable, level, lead) at a time from the verified local mirror of the
miner's store, so memory stays at a few fields whatever the forecast size. Truth, reference and
climatology come from the source protocols, cached on disk once per run.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import xarray as xr

from gaia_dagster.core.retry import DEFAULT_RETRIES, StageRetry
from gaia_dagster.core.contract import (
    DAY1_LEAD_HOURS, ERA5_LEAD_HOURS, Grid, time_index,
)
from gaia_dagster.core.scoring.aggregate import overall_score
from gaia_dagster.core.scoring.day1 import DAY1_VARIABLES
from gaia_dagster.core.scoring.metrics import lat_weights
from gaia_dagster.core.scoring.profiles import scoring_profile
from gaia_dagster.core.scoring.regions import Scorecard
from gaia_dagster.core.scoring.stream import (
    FieldKey, FieldPlanes, TruthGrid, era5_keys, read_ahead, score_day1_fields, score_era5_fields,
)
from gaia_dagster.db.repository import ResponseRecord, ValidatorRepository
from gaia_dagster.db.scorecards import record_regional_scores
from gaia_dagster.resources.miner_client import MinerClient
from gaia_dagster.resources.sources import WeatherSources, cache_path, cached, ensure_cached
from gaia_dagster.core.states import ERA5_SCORED_STATUSES, TERMINAL_RESPONSE_STATUSES, RunStatus
from gaia_dagster.stages.lifecycle import advance_run, finish_stage
from gaia_dagster.core.scoring.era5_leads import is_complete, leads_to_score, progressive_score
from gaia_dagster.stages.attempts import DAY1, ERA5, ForecastRejected, StageRefused, StageSpec, is_past, run_attempt, who
from gaia_dagster.stages.copies import refuse_copy
from gaia_dagster.core.manifest import PinnedManifest
from gaia_dagster.stages.forecast import fetch_fields
from gaia_dagster.stages.weights import day_weights


@dataclass
class StageScore:
    outcome: str  # scored | already_scored
    score: float | None
    rows: list[dict[str, Any]] = field(default_factory=list)
    lead_scores: dict[int, float] = field(default_factory=dict)
    clone_clamped: bool = False
    complete: bool = True   # False: progressive ERA5 scored the leads due so far, more will come
    profile: str | None = None   # the scoring profile (core/scoring/profiles.py) the rows were scored under
    regional: list[dict[str, Any]] = field(default_factory=list)   # the scorecard's rows (core/scoring/regions.py)


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


# -- day-1 ------------------------------------------------------------------------------------
def run_scoring_stage(repo: ValidatorRepository, row: ResponseRecord, spec: StageSpec, retry: StageRetry, score,
                      dagster_run_id: str | None = None) -> StageScore:  # noqa: ANN001
    """The shape every scoring stage shares (claimed attempt, strict transitions, see ``attempts``):
    score, store the rows under their unique keys, ``working -> done``. A scored job answers
    ``already_scored`` with the score it holds."""
    def finish(current: ResponseRecord, result: StageScore) -> None:
        totals = [{"lead_hours": lead, "variable": "*", "level": 0, "score": s} for lead, s in result.lead_scores.items()]
        repo.record_scores(current.id, spec.name,
                           [*result.rows, *totals, {"lead_hours": 0, "variable": "*", "level": 0, "score": result.score}],
                           profile=result.profile)
        record_regional_scores(repo, current.id, spec.name, result.regional)
        if result.complete or spec.partial is None:
            finish_stage(repo, current.id, spec.working, spec.done, dagster_run_id, error=None)
        else:   # an arrival scored: rest until the next lead, with a fresh set of attempts for it
            finish_stage(repo, current.id, spec.working, spec.partial, dagster_run_id, error=None,
                         **{f"{spec.name}_attempts": 0})

    def already_done(current: ResponseRecord) -> StageScore:
        return StageScore("already_scored", repo.total_score(current.id, spec.name),
                          profile=repo.score_profile(current.id, spec.name))

    def work(current: ResponseRecord) -> StageScore:
        refuse_copy(repo, current)  # copy rule (stages.copies): a miner of a copy pair is never scored
        return score()

    return run_attempt(repo, row, spec, retry, work, finish, already_done, dagster_run_id)


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
    return score_day1_dataset(ds, sources, t0, who(row))


def score_day1_dataset(ds: xr.Dataset, sources: WeatherSources, t0: datetime, label: str) -> StageScore:
    """Day-1 of a forecast dataset against the cached GFS analysis and f012 reference, through the
    one scoring path (core.scoring.stream) under the configured profile, over Gaia's day-1 list
    (a listed variable the forecast lacks is left out, as Gaia skips it)."""
    lead = DAY1_LEAD_HOURS[0]
    valid = t0 + timedelta(hours=lead)
    root = sources.cache_root()
    truth = cached(cache_path(root, "gfs", valid, "analysis"), lambda: sources.gfs().analysis(valid))
    reference = cached(cache_path(root, "gfs", t0, f"forecast_f{lead:03d}"), lambda: sources.gfs().forecast(t0, lead))
    clim = _climatology(sources, valid)
    f_lat, f_lon = np.asarray(ds["lat"].values), np.asarray(ds["lon"].values)
    fields = (FieldPlanes(lead, variable, level, _forecast_plane(ds, lead, variable, level), f_lat, f_lon,
                          _plane(truth, variable, level), _plane(clim, variable, level),
                          _plane(reference, variable, level))
              for variable, level in DAY1_VARIABLES if variable in ds.data_vars)   # one it lacks: skipped, as Gaia
    profile = scoring_profile(sources.scoring_profile)
    grid = _truth_grid(truth)
    scorecard = _scorecard(grid)
    result = score_day1_fields(fields, grid, profile, scorecard=scorecard)
    if result.failure:
        raise ForecastRejected(f"{label}: {result.failure}")
    rows = [_day1_row(c) for c in result.components]
    return StageScore("scored", float(result.score), rows, clone_clamped=bool(result.clone_clamped),
                      profile=profile.name, regional=[m.as_row() for m in scorecard.rows])


def _truth_grid(truth: xr.Dataset) -> TruthGrid:
    return TruthGrid(np.asarray(truth["lat"].values), np.asarray(truth["lon"].values))


def _scorecard(grid: TruthGrid) -> Scorecard:
    """The regional scorecard of a score on ``grid``, with the score's (Gaia's cos) latitude weights."""
    return Scorecard(grid.lat, grid.lon, lat_weights(grid.lat))


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
        return StageScore("scored", progressive_score(leads), arrival.rows, leads, complete=is_complete(leads),
                          profile=arrival.profile, regional=arrival.regional)

    return run_scoring_stage(repo, row, ERA5, retry or DEFAULT_RETRIES["era5"], score, dagster_run_id)


def _era5(client: MinerClient, sources: WeatherSources, row: ResponseRecord,
          pinned: PinnedManifest | None = None, leads: Sequence[int] = ERA5_LEAD_HOURS) -> StageScore:
    """Score ``leads`` of the miner's forecast against ERA5 (the fields of those leads only)."""
    ds, _ = fetch_fields(client, row, sources.cache_root(), "era5", [time_index(h) for h in leads],
                         pinned=pinned, grid=Grid(sources.resolution))
    return score_era5_dataset(ds, sources, row.gfs_init_time, leads, who(row))


def score_era5_dataset(ds: xr.Dataset, sources: WeatherSources, t0: datetime, leads: Sequence[int],
                       label: str) -> StageScore:
    """ERA5 of ``leads`` of a forecast dataset against the cached ERA5, through the one scoring
    path (core.scoring.stream) under the configured profile and ERA5 variable list
    (``GAIA_ERA5_VARIABLES``); a failed guard or a deployed-profile refusal rejects the forecast,
    naming ``label``."""
    truths = seed_era5(sources, t0, leads)
    per_lead = _LeadInputs(sources, t0, truths)
    f_lat, f_lon = np.asarray(ds["lat"].values), np.asarray(ds["lon"].values)

    def read(key: FieldKey) -> FieldPlanes:
        truth, clim = per_lead.at(key.lead_hours)
        return FieldPlanes(key.lead_hours, key.variable, key.level,
                           _forecast_plane(ds, key.lead_hours, key.variable, key.level), f_lat, f_lon,
                           _plane(truth, key.variable, key.level), _plane(clim, key.variable, key.level))

    profile = scoring_profile(sources.scoring_profile)
    entries = sources.era5_entries()
    grid = _truth_grid(per_lead.at(leads[0])[0])
    scorecard = _scorecard(grid)
    result = score_era5_fields(read_ahead(era5_keys(leads, entries), read), grid,
                               profile, scored_leads=leads, entries=entries, scorecard=scorecard)
    if result.failure:
        raise ForecastRejected(f"{label}: {result.failure}")
    rows = [_era5_row(m) for m in result.metrics]
    return StageScore("scored", float(result.score), rows, dict(result.lead_scores), profile=profile.name,
                      regional=[m.as_row() for m in scorecard.rows])


class _LeadInputs:
    """ERA5 truth and climatology of the lead being read; only the current lead is held."""

    def __init__(self, sources: WeatherSources, t0: datetime, truths: dict[int, Path]):
        self.sources, self.t0, self.truths = sources, t0, truths
        self.lock = threading.Lock()
        self.held: dict[int, tuple[xr.Dataset, xr.Dataset]] = {}

    def at(self, lead: int) -> tuple[xr.Dataset, xr.Dataset]:
        with self.lock:
            if lead not in self.held:
                valid = self.t0 + timedelta(hours=lead)
                truth = cached(self.truths[lead], lambda: self.sources.era5().truth(valid))
                self.held = {k: v for k, v in self.held.items() if k > lead}
                self.held[lead] = (truth, _climatology(self.sources, valid))
            return self.held[lead]


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
    weights = day_weights(repo, repo.run_by_id(run_id))
    board = [LeaderboardEntry(i + 1, r.miner_hotkey, r.status, day1, era5, overall, weights.get(r.miner_hotkey, 0.0),
                              r.error)
             for i, (r, day1, era5, overall) in enumerate(scored)]
    if all(r.status in TERMINAL_RESPONSE_STATUSES for r, *_ in scored):
        advance_run(repo, run_id, RunStatus.COMPLETED, dagster_run_id)
    return board

"""Stages ``day1`` and ``era5`` and the leaderboard: score the forecast the miner served.

Fields are streamed one (variable, level, lead) at a time from the verified local mirror of the
miner's store, each plane decoded straight from its chunk file (``resources.zarr_planes``), so
memory stays at a few fields whatever the forecast size. Truth, reference and climatology come from
the source protocols, cached on disk: ERA5 and the climatology one entry per (valid time, variable),
fetched once whatever reads them, and read back one plane at a time from the held entries' chunk
files (``resources.sources.held_variables``), so a lead's truth is never in memory whole.
"""

from __future__ import annotations

import threading
from collections import Counter
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, Iterator, Sequence

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
from gaia_dagster.resources.cache import EntryPlanes
from gaia_dagster.resources.miner_client import MinerClient
from gaia_dagster.resources.zarr_planes import FieldReader
from gaia_dagster.resources.sources import (
    WeatherSources, cache_folder, cache_path, ensure_cached, ensure_variables, held_datasets, held_variables,
)
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


def era5_variables(sources: WeatherSources) -> list[str]:
    """The variables of the ERA5 variable list (``GAIA_ERA5_VARIABLES``), in its order: what is
    fetched and cached of ERA5 and the climatology (every level of each; scoring picks the levels)."""
    return list(dict.fromkeys(e.variable for e in sources.era5_entries()))


def seed_era5(sources: WeatherSources, t0: datetime, leads: Sequence[int] = ERA5_LEAD_HOURS) -> dict[int, Path]:
    """Cache ERA5 at the valid time of each of ``leads``, one entry per (valid time, variable) of the
    variable list, each fetched once (``ensure_variables``); a time not yet available raises
    LookupError. The folder of each lead's entries, by lead."""
    era5, root, variables = sources.era5(), sources.cache_root(), era5_variables(sources)
    return {lead: ensure_variables(cache_folder(root, "era5", t0 + timedelta(hours=lead)), variables,
                                   lambda todo, valid=t0 + timedelta(hours=lead): era5.truth(valid, todo))
            for lead in leads}


@contextmanager
def _held_truth(sources: WeatherSources, valid: datetime, variables: Sequence[str]) -> Iterator[dict[str, EntryPlanes]]:
    """ERA5 at ``valid`` of ``variables``, held lazily from the cache (fetched first if missing)."""
    with held_variables(cache_folder(sources.cache_root(), "era5", valid), variables,
                        lambda todo: sources.era5().truth(valid, todo)) as parts:
        yield parts


@contextmanager
def _held_climatology(sources: WeatherSources, valid: datetime,
                      variables: Sequence[str]) -> Iterator[dict[str, EntryPlanes]]:
    """The climatology at ``valid`` of ``variables``, held lazily from the cache (fetched first if missing)."""
    with held_variables(cache_folder(sources.cache_root(), "climatology", valid), variables,
                        lambda todo: sources.climatology().climatology(valid, todo)) as parts:
        yield parts


def _forecast_plane(forecast: FieldReader, lead: int, variable: str, level: int | None) -> np.ndarray:
    """The plane of ``variable`` at ``lead`` (its time step) and ``level`` (by value)."""
    at = {"time": time_index(lead)}
    if level is not None:
        at["pressure_level"] = forecast.index["pressure_level"][level]
    return forecast.plane_at(variable, at)


def _mirror_reader(ds: xr.Dataset, mirror: Path) -> FieldReader:
    """The planes of a verified mirror, read straight from its chunk files (each verified against
    the manifest when it was written): ``resources.zarr_planes.FieldReader``."""
    return FieldReader(ds, str(mirror))


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
    ds, store = fetch_fields(client, row, sources.cache_root(), "day1", [time_index(h) for h in DAY1_LEAD_HOURS],
                             pinned=pinned, grid=Grid(sources.resolution))
    return score_day1_dataset(_mirror_reader(ds, store.path), sources, t0, who(row))


@contextmanager
def _held_gfs(sources: WeatherSources, t0: datetime, lead: int) -> Iterator[tuple[EntryPlanes, EntryPlanes]]:
    """The cached GFS analysis at T0 + ``lead`` and the T0 forecast at ``lead`` (``seed_gfs``'s
    entries, fetched first if missing), held lazily from the cache: (analysis, forecast)."""
    valid, root = t0 + timedelta(hours=lead), sources.cache_root()
    paths = {"analysis": cache_path(root, "gfs", valid, "analysis"),
             "forecast": cache_path(root, "gfs", t0, f"forecast_f{lead:03d}")}
    produce = {"analysis": lambda: sources.gfs().analysis(valid), "forecast": lambda: sources.gfs().forecast(t0, lead)}
    with held_datasets(paths, produce) as parts:
        yield parts["analysis"], parts["forecast"]


def score_day1_dataset(forecast: FieldReader, sources: WeatherSources, t0: datetime, label: str) -> StageScore:
    """Day-1 of a forecast against the cached GFS analysis and f012 reference, through the
    one scoring path (core.scoring.stream) under the configured profile, over Gaia's day-1 list
    (a listed variable the forecast lacks is left out, as Gaia skips it)."""
    lead = DAY1_LEAD_HOURS[0]
    valid = t0 + timedelta(hours=lead)
    f_lat, f_lon = _lat_lon(forecast.ds)
    scored = [(v, level) for v, level in DAY1_VARIABLES if v in forecast.ds.data_vars]   # one it lacks: skipped, as Gaia
    profile = scoring_profile(sources.scoring_profile)
    with _held_gfs(sources, t0, lead) as (truth, reference), \
            _held_climatology(sources, valid, list(dict.fromkeys(v for v, _ in scored))) as clim:
        grid = TruthGrid(truth.lat, truth.lon)
        scorecard = _scorecard(grid)
        fields = (FieldPlanes(lead, variable, level, _forecast_plane(forecast, lead, variable, level), f_lat, f_lon,
                              truth.plane(variable, level), clim[variable].plane(variable, level),
                              reference.plane(variable, level))
                  for variable, level in scored)
        result = score_day1_fields(fields, grid, profile, scorecard=scorecard)
    if result.failure:
        raise ForecastRejected(f"{label}: {result.failure}")
    rows = [_day1_row(c) for c in result.components]
    return StageScore("scored", float(result.score), rows, clone_clamped=bool(result.clone_clamped),
                      profile=profile.name, regional=[m.as_row() for m in scorecard.rows])


def _lat_lon(ds: xr.Dataset) -> tuple[np.ndarray, np.ndarray]:
    return np.asarray(ds["lat"].values), np.asarray(ds["lon"].values)


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
    ds, store = fetch_fields(client, row, sources.cache_root(), "era5", [time_index(h) for h in leads],
                             pinned=pinned, grid=Grid(sources.resolution))
    return score_era5_dataset(_mirror_reader(ds, store.path), sources, row.gfs_init_time, leads, who(row))


def score_era5_dataset(forecast: FieldReader, sources: WeatherSources, t0: datetime, leads: Sequence[int],
                       label: str) -> StageScore:
    """ERA5 of ``leads`` of a forecast against the cached ERA5, through the one scoring
    path (core.scoring.stream) under the configured profile and ERA5 variable list
    (``GAIA_ERA5_VARIABLES``); a failed guard or a deployed-profile refusal rejects the forecast,
    naming ``label``."""
    entries = sources.era5_entries()
    keys = era5_keys(leads, entries)
    profile = scoring_profile(sources.scoring_profile)
    f_lat, f_lon = _lat_lon(forecast.ds)
    with _LeadInputs(sources, t0, keys) as per_lead:
        def read(key: FieldKey) -> FieldPlanes:
            truth, clim = per_lead.planes(key)
            return FieldPlanes(key.lead_hours, key.variable, key.level,
                               _forecast_plane(forecast, key.lead_hours, key.variable, key.level), f_lat, f_lon,
                               truth, clim)

        grid = per_lead.grid(leads[0])
        scorecard = _scorecard(grid)
        stream = read_ahead(keys, read)
        try:
            result = score_era5_fields(stream, grid, profile, scored_leads=leads, entries=entries, scorecard=scorecard)
        finally:
            stream.close()   # reads still in flight finish before the entries are let go
    if result.failure:
        raise ForecastRejected(f"{label}: {result.failure}")
    rows = [_era5_row(m) for m in result.metrics]
    return StageScore("scored", float(result.score), rows, dict(result.lead_scores), profile=profile.name,
                      regional=[m.as_row() for m in scorecard.rows])


class _LeadInputs:
    """ERA5 truth and climatology planes of the leads being scored, read one (variable, level) at a
    time from their cache entries. A lead's entries are held (checked, never evicted under the
    read) from its first plane to its last: at most the two leads ``read_ahead`` straddles, and
    what is in memory is the planes being scored, never a whole lead. Leave the block to let go."""

    def __init__(self, sources: WeatherSources, t0: datetime, keys: Sequence[FieldKey]):
        self.sources, self.t0 = sources, t0
        self.variables = {lead: list(dict.fromkeys(k.variable for k in keys if k.lead_hours == lead))
                          for lead in dict.fromkeys(k.lead_hours for k in keys)}
        self.left = Counter(key.lead_hours for key in keys)
        self.lock = threading.Lock()
        self.held: dict[int, tuple[ExitStack, dict[str, EntryPlanes], dict[str, EntryPlanes]]] = {}

    def __enter__(self) -> "_LeadInputs":
        return self

    def __exit__(self, *exc) -> None:  # noqa: ANN002
        with self.lock:
            stacks = [stack for stack, _, _ in self.held.values()]
            self.held.clear()
        for stack in stacks:
            stack.close()

    def _hold(self, lead: int) -> tuple[dict[str, EntryPlanes], dict[str, EntryPlanes]]:
        """The lead's truth and climatology entries, held from the first call (fetched if missing)."""
        with self.lock:
            if lead not in self.held:
                valid, variables = self.t0 + timedelta(hours=lead), self.variables[lead]
                with ExitStack() as stack:
                    truth = stack.enter_context(_held_truth(self.sources, valid, variables))
                    clim = stack.enter_context(_held_climatology(self.sources, valid, variables))
                    self.held[lead] = (stack.pop_all(), truth, clim)
            _, truth, clim = self.held[lead]
            return truth, clim

    def grid(self, lead: int) -> TruthGrid:
        """The truth grid (ERA5's latitudes and longitudes) at ``lead``."""
        truth, _ = self._hold(lead)
        entry = next(iter(truth.values()))
        return TruthGrid(entry.lat, entry.lon)

    def planes(self, key: FieldKey) -> tuple[np.ndarray, np.ndarray]:
        """The truth and climatology planes of ``key``; the lead is let go after its last plane."""
        truth, clim = self._hold(key.lead_hours)
        planes = (truth[key.variable].plane(key.variable, key.level),
                  clim[key.variable].plane(key.variable, key.level))
        with self.lock:
            self.left[key.lead_hours] -= 1
            done = self.held.pop(key.lead_hours) if self.left[key.lead_hours] == 0 else None
        if done is not None:
            done[0].close()
        return planes


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

"""The one scoring path: the pipeline stages and ``gaia-dagster score`` both feed their fields,
one at a time, to ``score_era5_fields`` / ``score_day1_fields``, which apply every rule in the same
order (so the two cannot drift):

1. the forecast plane is put on the truth grid (``core.regrid``; under ``deployed`` also on the same
   grid when it holds NaNs, which the interpolation spreads, along the levels of an all-levels
   entry too), then, for ERA5 under ``deployed``, Gaia's edge salvage of border NaNs;
2. the verification guard (coverage < 0.1 or |value| > 1e12 fails the forecast; day 1 under
   ``deployed``: the 1e12 part only, Gaia's day 1 has no coverage guard);
3. ERA5: the 0.9985 coverage guard, then the climatology fill and the fused metrics;
4. the profile's aggregation (``core.scoring.profiles``) over the entries of the variable list
   (``core.scoring.variables``; a lead without fields counts 0).
"""

from __future__ import annotations

from collections import defaultdict, deque
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from typing import Callable, Iterable, Iterator, Sequence

import numpy as np

from gaia_dagster.core.contract import ERA5_LEAD_HOURS
from gaia_dagster.core.regrid import on_truth_grid, salvage_edges, same_grid
from gaia_dagster.core.scoring.day1 import Day1Field, Day1Result, day1_score_from_components, score_component
from gaia_dagster.core.scoring.day1_deployed import score_component_deployed
from gaia_dagster.core.scoring.era5 import (
    Era5Metric, Era5Result, era5_guards_failure, era5_score_from_metrics, field_name, magnitude_failure,
    verification_failure,
)
from gaia_dagster.core.scoring.era5_deployed import Era5ScoringFailed, deployed_lead_score, lead_summaries
from gaia_dagster.core.scoring.fused import fused_metrics
from gaia_dagster.core.scoring.metrics import lat_weights
from gaia_dagster.core.scoring.profiles import ScoringProfile, scoring_profile
from gaia_dagster.core.scoring.regions import Scorecard
from gaia_dagster.core.scoring.variables import VariableEntry, entry_names, parse_variables


READ_THREADS = 3


@dataclass(frozen=True)
class FieldKey:
    """One (lead, variable, level) to score."""

    lead_hours: int
    variable: str
    level: int | None

    @property
    def name(self) -> str:
        return field_name(self.variable, self.level)


def era5_keys(leads: Sequence[int], entries: Sequence[VariableEntry] | None = None) -> list[FieldKey]:
    """Every field of the variable list's ``entries`` (default: Gaia's list) at ``leads``, in the
    order the stream wants them: per lead, per entry, pressure levels ascending
    (``spread_across_levels`` relies on it)."""
    return [FieldKey(lead, e.variable, level) for lead in leads for e in entries or parse_variables(None)
            for level in e.levels]


def read_ahead(keys: Sequence[FieldKey], read: Callable[[FieldKey], "FieldPlanes"],
               threads: int = READ_THREADS) -> Iterator["FieldPlanes"]:
    """The field iterator both the CLI and the pipeline score over: ``read(key)`` for each key in
    order, at most ``2 * threads`` reads submitted ahead of the consumer (decompression releases the
    GIL), so memory stays at a few planes whatever the forecast size."""
    with ThreadPoolExecutor(threads) as pool:
        ahead: deque = deque()
        for key in keys:
            ahead.append(pool.submit(read, key))
            if len(ahead) > 2 * threads:
                yield ahead.popleft().result()
        while ahead:
            yield ahead.popleft().result()


@dataclass(frozen=True)
class TruthGrid:
    lat: np.ndarray
    lon: np.ndarray


@dataclass(frozen=True)
class FieldPlanes:
    """One (lead, variable, level): the forecast on its own grid; truth, climatology and (day-1)
    the GFS reference already on the truth grid."""

    lead_hours: int
    variable: str
    level: int | None
    forecast: np.ndarray
    forecast_lat: np.ndarray
    forecast_lon: np.ndarray
    truth: np.ndarray
    climatology: np.ndarray
    reference: np.ndarray | None = None

    @property
    def name(self) -> str:
        return field_name(self.variable, self.level)


class GridMatch:
    """Whether a forecast grid is the truth grid, decided once per run of fields sharing their
    coordinate arrays (a stream's fields share them), not once per field."""

    def __init__(self, grid: TruthGrid):
        self.grid = grid
        self.last: tuple[np.ndarray, np.ndarray, bool] | None = None

    def __call__(self, fld: "FieldPlanes") -> bool:
        last = self.last
        if last is None or last[0] is not fld.forecast_lat or last[1] is not fld.forecast_lon:
            last = self.last = (fld.forecast_lat, fld.forecast_lon,
                                same_grid(fld.forecast_lat, fld.forecast_lon, self.grid.lat, self.grid.lon))
        return last[2]


def forecast_on_grid(fld: FieldPlanes, grid: TruthGrid, profile: ScoringProfile,
                     on_grid: GridMatch | None = None) -> np.ndarray:
    """Rule 1: the forecast plane on the truth grid under the profile's regridding choices."""
    return on_truth_grid(fld.forecast, fld.forecast_lat, fld.forecast_lon, grid.lat, grid.lon,
                         profile.spread_nans, profile.regrid_outside, None if on_grid is None else on_grid(fld))


def _nan_mask(values: np.ndarray) -> np.ndarray | None:
    """The NaN cells of a plane, None when it has none (one min/max pass in the common case)."""
    values = np.asarray(values)
    if np.isfinite(values.min()) and np.isfinite(values.max()):
        return None
    return ~np.isfinite(values)


def _blanked(fld: FieldPlanes, mask: np.ndarray | None) -> FieldPlanes:
    if mask is None or mask.shape != np.shape(fld.forecast):
        return fld
    return replace(fld, forecast=np.where(mask, np.nan, np.asarray(fld.forecast, dtype=np.float64)))


def spread_across_levels(fields: Iterable[FieldPlanes], variables: Iterable[str]) -> Iterator[FieldPlanes]:
    """Deployed rule: for an all-levels entry (``variables``) the interpolation onto the truth grid
    runs along the pressure levels too, so a NaN at level k (levels ascending) also blanks level
    k+1, and one at the second level blanks the first; a single-level entry is interpolated on its
    own. Levels must arrive ascending per (lead, variable); at most one plane is held back."""
    spread = set(variables)
    pending: FieldPlanes | None = None
    carry: dict[tuple[int, str], np.ndarray | None] = {}
    for fld in fields:
        if pending is not None and (pending.lead_hours, pending.variable) != (fld.lead_hours, fld.variable):
            yield pending
            pending = None
        if fld.level is None or fld.variable not in spread:
            yield fld
            continue
        key = (fld.lead_hours, fld.variable)
        mask = _nan_mask(fld.forecast)
        if key not in carry:            # first level: wait for the second one's mask
            carry[key], pending = mask, fld
            continue
        if pending is not None:
            yield _blanked(pending, mask)
            pending = None
        yield _blanked(fld, carry[key])
        carry[key] = mask
    if pending is not None:
        yield pending


def era5_metric(fld: FieldPlanes, forecast: np.ndarray, w: np.ndarray, profile: ScoringProfile,
                acc: str = "centred", single_field: bool = True, row_sums: np.ndarray | None = None) -> Era5Metric:
    """Rule 3: one field's row (climatology fill inside the fused pass); the bias of a single-field
    entry is the unweighted mean error under ``deployed``. ``row_sums``: see ``fused_metrics``."""
    m = fused_metrics(forecast, fld.truth, fld.climatology, w, row_sums)
    bias = m.mean_error if (profile.surface_bias_unweighted and single_field) else m.bias
    return Era5Metric(fld.variable, fld.level, fld.lead_hours, m.rmse, bias,
                      m.acc_centred if acc == "centred" else m.acc_uncentred, m.skill, m.reference_rmse)


def era5_profile_score(metrics: Sequence[Era5Metric], profile: ScoringProfile,
                       leads: Sequence[int] = ERA5_LEAD_HOURS, scored_leads: Iterable[int] | None = None,
                       entries: Sequence[VariableEntry] | None = None) -> Era5Result:
    """Rule 4 for ERA5: lead scores under the profile over the variable list's ``entries``; the
    score = their sum / every required lead. A lead without any field has no score (counts 0): Gaia
    aggregates only the leads it stored rows for."""
    entries = entries or parse_variables(None)
    of_field = entry_names(entries)
    if not profile.era5_collapse_levels:
        return era5_score_from_metrics(metrics, leads, lambda m: of_field[(m.variable, m.level)].name)
    by_lead: dict[int, list[Era5Metric]] = defaultdict(list)
    for m in metrics:
        by_lead[m.lead_hours].append(m)
    lead_scores, summaries = {}, {}
    for lead in sorted(lead for lead in set(scored_leads or by_lead) if by_lead.get(lead)):
        try:
            summaries[lead] = lead_summaries(by_lead[lead], entries)
            lead_scores[lead] = deployed_lead_score(summaries[lead])
        except Era5ScoringFailed as exc:
            return Era5Result(0.0, {}, list(metrics), f"{exc} at lead {lead} h")
    return Era5Result(sum(lead_scores.values()) / len(leads) if leads else 0.0, lead_scores, list(metrics),
                      summaries=summaries)


def score_era5_fields(fields: Iterable[FieldPlanes], grid: TruthGrid, profile: str | ScoringProfile | None = None,
                      leads: Sequence[int] = ERA5_LEAD_HOURS, scored_leads: Iterable[int] | None = None,
                      weights: str = "cos", acc: str = "centred",
                      entries: Sequence[VariableEntry] | None = None, scorecard: Scorecard | None = None) -> Era5Result:
    """The ERA5 score of a stream of the fields of ``entries`` (the variable list; default Gaia's)
    (rules 1-4). The first guard failure stops the stream and fails the response (score 0,
    ``failure`` names the field and lead). ``scored_leads``: the leads this call scores (default:
    those the fields cover). A ``scorecard`` (``core.scoring.regions``) is handed each scored
    plane as it passes, so the regional rows cost no second read; the score never depends on it."""
    profile = scoring_profile(profile)
    entries = entries or parse_variables(None)
    of_field = entry_names(entries)
    w = lat_weights(grid.lat, weights)
    metrics = []
    spread = [e.variable for e in entries if e.all_levels]
    on_grid = GridMatch(grid)
    for fld in (spread_across_levels(fields, spread) if profile.spread_nans else fields):
        forecast = forecast_on_grid(fld, grid, profile, on_grid)
        if profile.edge_salvage:
            forecast = salvage_edges(forecast)
        problem = era5_guards_failure(forecast, fld.name)
        if problem:
            return Era5Result(0.0, {}, metrics, f"{problem} at lead {fld.lead_hours} h")
        single = not of_field[(fld.variable, fld.level)].all_levels
        rows = None if scorecard is None else np.empty((5, len(grid.lat)))
        metrics.append(era5_metric(fld, forecast, w, profile, acc, single, rows))
        if scorecard is not None:
            scorecard.add(fld.lead_hours, fld.variable, fld.level, forecast, fld.truth, fld.climatology,
                          row_sums=rows)
    return era5_profile_score(metrics, profile, leads, scored_leads, entries)


def score_day1_fields(fields: Iterable[FieldPlanes], grid: TruthGrid, profile: str | ScoringProfile | None = None,
                      weights: str = "cos", scorecard: Scorecard | None = None) -> Day1Result:
    """The day-1 score of a stream of fields at one lead (rules 1, 2 and 4); a verification
    failure fails the forecast (score 0, ``failure`` says why). A ``scorecard`` gets each plane
    with the GFS forecast as its second reference."""
    profile = scoring_profile(profile)
    w = lat_weights(grid.lat, weights)
    components = []
    on_grid = GridMatch(grid)
    for fld in fields:
        forecast = forecast_on_grid(fld, grid, profile, on_grid)
        problem = verification_failure(forecast, fld.name) if profile.day1_coverage_guard \
            else magnitude_failure(forecast, fld.name)
        if problem:
            return Day1Result(0.0, components, False, f"{problem} at lead {fld.lead_hours} h")
        planes = Day1Field(forecast, fld.truth, fld.reference, fld.climatology)
        if scorecard is not None:
            scorecard.add(fld.lead_hours, fld.variable, fld.level, forecast, fld.truth, fld.climatology, fld.reference)
        key = (fld.variable, fld.level)
        if profile.day1_skip_nans:
            components.append(score_component_deployed(key, planes, w, fld.lead_hours))
        else:
            components.append(score_component(key, planes, w, fld.lead_hours, profile.day1_range_checks))
    return day1_score_from_components(components, profile.clone_clamp_sane_only, profile.nan_counts_worst)


"""``gaia-dagster score era5|day1``: score a forecast store exactly as the validator does.

Inputs are Zarr (v2 or v3) or netCDF stores in the forecast data contract; the forecast, untrusted,
is a Zarr store read through the pipeline's bounded reader (``open_forecast``). Fields are read one
(lead, variable, level) at a time, two at once (decompression releases the GIL), and each is
scored in one fused pass, so memory stays at a few fields whatever the store size. Only numpy,
xarray and the scoring core are imported: no Dagster.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from dataclasses import asdict
from datetime import datetime, timedelta, timezone
from typing import Iterable

import numpy as np
import xarray as xr

from gaia_dagster.core.contract import DAY1_LEAD_HOURS, ERA5_LEAD_HOURS
from gaia_dagster.core.regrid import regrid_linear
from gaia_dagster.core.scoring.era5 import Era5Metric
from gaia_dagster.core.scoring.metrics import lat_weights
from gaia_dagster.core.scoring.profiles import PROFILES, scoring_profile
from gaia_dagster.core.scoring.regions import Scorecard
from gaia_dagster.core.scoring.variables import (
    DEFAULT_DAY1_VARIABLES, DEFAULT_ERA5_VARIABLES, VariableEntry, parse_variables,
)
from gaia_dagster.core.scoring.stream import (
    FieldKey, FieldPlanes, TruthGrid, era5_keys, read_ahead, score_day1_fields, score_era5_fields,
)
from gaia_dagster.core.store_limits import StoreRefused
from gaia_dagster.resources.store_reader import open_local_store
from gaia_dagster.resources.zarr_planes import NETCDF_SUFFIXES, FieldReader


def open_forecast(path: str, variables: Iterable[str] | None = None) -> "FieldReader":
    """The forecast, read through the pipeline's bounded reader with the same limits as a miner's
    store (``resources.store_reader.open_local_store``: bytes, files and chunks, decoded size,
    time): its metadata and coordinates before xarray opens it, then each chunk of ``variables``
    only when a plane scored needs it (``FieldReader``), so only the fields scored are read, each
    once. It must be a Zarr store with consolidated metadata; a store or a chunk beyond the limits
    raises ``StoreRefused`` before anything decodes it."""
    store = open_local_store(path, variables)
    return FieldReader(xr.open_zarr(path, consolidated=True), path, store)


def open_store(path: str) -> xr.Dataset:
    """A reference store (truth, reference, climatology: the operator's data): Zarr (v2 or v3,
    consolidated or not) or a netCDF file, lazily."""
    if path.endswith(NETCDF_SUFFIXES):
        return xr.open_dataset(path)
    return xr.open_zarr(path, consolidated=None)


def init_time_of(forecast: xr.Dataset, given: str | None) -> datetime:
    """T0: ``--init-time``, else the ``lead_time`` coordinate (hours), else ``forecast_start_time``."""
    if given:
        return _utc(datetime.fromisoformat(given.replace("Z", "+00:00")))
    if "lead_time" in forecast.coords:
        first_time = _to_datetime(forecast["time"].values[0])
        lead = forecast["lead_time"].values[0]
        hours = lead / np.timedelta64(1, "h") if np.issubdtype(np.asarray(lead).dtype, np.timedelta64) else float(lead)
        return first_time - timedelta(hours=float(hours))
    if "forecast_start_time" in forecast.attrs:
        return _utc(datetime.fromisoformat(str(forecast.attrs["forecast_start_time"]).replace("Z", "+00:00")))
    raise ValueError("the forecast's T0 is unknown: pass --init-time, or give the store a lead_time coordinate "
                     "or a forecast_start_time attribute")


def _utc(moment: datetime) -> datetime:
    return moment.replace(tzinfo=timezone.utc) if moment.tzinfo is None else moment.astimezone(timezone.utc)


def _to_datetime(value: np.datetime64) -> datetime:
    return datetime.fromtimestamp(value.astype("datetime64[s]").astype(int), tz=timezone.utc)


def _naive64(moment: datetime) -> np.datetime64:
    return np.datetime64(moment.astimezone(timezone.utc).replace(tzinfo=None), "ns")


def plan_fields(forecast: xr.Dataset, truth: xr.Dataset, t0: datetime, leads,  # noqa: ANN001
                entries: tuple[VariableEntry, ...] | None = None) -> tuple[list[FieldKey], list[str]]:
    """Every (lead, variable, level) of the variable list's ``entries`` present in both stores, in
    the scoring order of ``core.scoring.stream.era5_keys``, and the listed ones that are missing
    (variables outside the list are never read)."""
    times_f = set(forecast["time"].values.astype("datetime64[ns]"))
    times_t = set(truth["time"].values.astype("datetime64[ns]"))
    keys, missing = [], []
    for key in era5_keys(leads, entries):
        valid = _naive64(t0 + timedelta(hours=key.lead_hours))
        variable, level = key.variable, key.level
        present = (valid in times_f and valid in times_t and variable in forecast and variable in truth
                   and (level is None or (level in forecast[variable]["pressure_level"].values
                                          and level in truth[variable]["pressure_level"].values)))
        (keys if present else missing).append(key)
    return keys, [f"{k.name}@{k.lead_hours}h" for k in missing]


def _plane(ds: xr.Dataset, variable: str, level: int | None, valid: datetime | None) -> xr.DataArray:
    da = ds[variable]
    if valid is not None and "time" in da.dims:
        da = da.sel(time=_naive64(valid))
    if level is not None:
        da = da.sel(pressure_level=level)
    return da


def _climatology_plane(clim: xr.Dataset, variable: str, level: int | None, valid: datetime) -> xr.DataArray:
    """The climatology at the valid time's day of year and hour."""
    da = _plane(clim, variable, level, None)
    return da.sel(dayofyear=valid.timetuple().tm_yday, hour=valid.hour)


def _on_grid(da: xr.DataArray, like: xr.DataArray) -> np.ndarray:
    """A reference input (climatology, GFS reference) on the truth grid: as is when the grids
    agree, else linearly regridded (the forecast itself is regridded by the scoring core)."""
    same = (da["lat"].size == like["lat"].size and da["lon"].size == like["lon"].size
            and np.allclose(da["lat"].values, like["lat"].values) and np.allclose(da["lon"].values, like["lon"].values))
    if same:
        return np.asarray(da.values)
    return regrid_linear(np.asarray(da.values), da["lat"].values, da["lon"].values, like["lat"].values,
                         like["lon"].values, outside="edge")


def same_grid(a: xr.Dataset, b: xr.Dataset) -> bool:
    """True when two stores share the lat/lon grid (no regridding needed)."""
    return (a["lat"].size == b["lat"].size and a["lon"].size == b["lon"].size
            and np.allclose(a["lat"].values, b["lat"].values) and np.allclose(a["lon"].values, b["lon"].values))


def era5_reader(forecast: FieldReader, truth: FieldReader, clim: FieldReader, t0: datetime):  # noqa: ANN201
    """``read(key)`` -> the key's ``FieldPlanes``: the forecast plane as stored (the scoring core
    regrids it), truth and climatology on the truth grid."""
    regrid_c = not same_grid(clim.ds, truth.ds)
    f_lat, f_lon = np.asarray(forecast.ds["lat"].values), np.asarray(forecast.ds["lon"].values)

    def read(key: FieldKey) -> FieldPlanes:
        valid = t0 + timedelta(hours=key.lead_hours)
        level = {} if key.level is None else {"pressure_level": key.level}
        o = truth.plane(key.variable, time=_naive64(valid), **level)
        f = forecast.plane(key.variable, time=_naive64(valid), **level)
        if regrid_c:
            c = _on_grid(_climatology_plane(clim.ds, key.variable, key.level, valid),
                         _plane(truth.ds, key.variable, key.level, valid))
        else:
            c = clim.plane(key.variable, dayofyear=valid.timetuple().tm_yday, hour=valid.hour, **level)
        return FieldPlanes(key.lead_hours, key.variable, key.level, f, f_lat, f_lon, o, c)

    return read


def score_era5_stores(forecast: FieldReader, truth: FieldReader, clim: FieldReader, t0: datetime,
                      weights: str = "cos", acc: str = "centred", profile: str | None = None,
                      variables: str | None = None, scorecard: bool = False) -> dict:
    """The ERA5 score of a forecast store over the variable list ``variables`` (comma-separated,
    default Gaia's), as JSON-ready data (core.scoring.stream, as the pipeline); with ``scorecard``
    also the regional scorecard, taken in the same pass."""
    profile = scoring_profile(profile)
    entries = parse_variables(variables, DEFAULT_ERA5_VARIABLES)
    keys, missing = plan_fields(forecast.ds, truth.ds, t0, ERA5_LEAD_HOURS, entries)
    leads = sorted({k.lead_hours for k in keys}) or list(ERA5_LEAD_HOURS)
    grid = TruthGrid(np.asarray(truth.ds["lat"].values), np.asarray(truth.ds["lon"].values))
    card = Scorecard(grid.lat, grid.lon, lat_weights(grid.lat, weights), acc=acc) if scorecard else None
    result = score_era5_fields(read_ahead(keys, era5_reader(forecast, truth, clim, t0)), grid, profile,
                               scored_leads=leads, weights=weights, acc=acc, entries=entries, scorecard=card)
    return {**_scorecard_json(card),
        "variables": [e.name for e in entries],
        "score": 0.0 if result.failure else result.score, "failure": result.failure,
        "leads": {str(lead): result.lead_scores.get(lead) for lead in leads},
        "metrics": [_metric_json(m) for m in result.metrics], "missing": missing,
        "entries": [{"lead_hours": lead, "name": v.variable, "rmse": _num(v.rmse), "acc": _num(v.acc),
                     "skill": _num(v.skill)} for lead, rows in result.summaries.items() for v in rows],
        "init_time": t0.isoformat(), "weights": weights, "acc": acc, "profile": profile.name,
    }


def score_day1_stores(forecast: FieldReader, truth: xr.Dataset, reference: xr.Dataset, clim: xr.Dataset,
                      t0: datetime, weights: str = "cos", profile: str | None = None,
                      variables: str | None = None, scorecard: bool = False) -> dict:
    """The day-1 score of a forecast store at 12 h against a GFS analysis, with a GFS reference,
    over the variable list ``variables`` (single fields, default Gaia's day-1 list); a listed
    variable the forecast lacks is left out (as Gaia skips it) and reported as missing."""
    profile = scoring_profile(profile)
    entries = parse_variables(variables, DEFAULT_DAY1_VARIABLES, single_fields_only=True)
    lead = DAY1_LEAD_HOURS[0]
    valid = t0 + timedelta(hours=lead)
    f_lat, f_lon = np.asarray(forecast.ds["lat"].values), np.asarray(forecast.ds["lon"].values)
    fields, missing = [], []
    for variable, level in ((e.variable, e.levels[0]) for e in entries):
        try:
            o = _plane(truth, variable, level, valid)
            f = forecast.plane(variable, time=_naive64(valid), **({} if level is None else {"pressure_level": level}))
            fields.append(FieldPlanes(lead, variable, level, f, f_lat, f_lon, np.asarray(o.values),
                                      _on_grid(_climatology_plane(clim, variable, level, valid), o),
                                      _on_grid(_plane(reference, variable, level, valid), o)))
        except StoreRefused:
            raise
        except (KeyError, ValueError):
            missing.append(f"{variable if level is None else f'{variable}{level}'}@{lead}h")
    grid = TruthGrid(np.asarray(truth["lat"].values), np.asarray(truth["lon"].values))
    card = Scorecard(grid.lat, grid.lon, lat_weights(grid.lat, weights)) if scorecard else None
    result = score_day1_fields(fields, grid, profile, weights=weights, scorecard=card)
    metrics = [{"variable": c.variable, "level": c.level, "lead_hours": c.lead_hours, "rmse": _num(c.rmse),
                "bias": _num(c.bias), "acc": _num(c.acc), "skill": _num(c.skill),
                "clone_distance": _num(c.clone_distance), "clone_penalty": _num(c.clone_penalty),
                "reason": c.reason} for c in result.components]
    return {**_scorecard_json(card), "variables": [e.name for e in entries],
            "score": 0.0 if result.failure else result.score, "failure": result.failure,
            "leads": {str(lead): result.score}, "metrics": metrics, "missing": missing,
            "clone_clamped": result.clone_clamped, "init_time": t0.isoformat(), "weights": weights,
            "profile": profile.name}


def _num(value: float | None) -> float | None:
    return None if value is None or not math.isfinite(value) else float(value)


def _scorecard_json(card: Scorecard | None) -> dict:
    """``{"scorecard": [rows]}`` (regions, leads, fields; non-finite values as null), or nothing."""
    if card is None:
        return {}
    return {"scorecard": [{k: (_num(v) if isinstance(v, float) else v) for k, v in m.as_row().items()}
                          for m in card.rows]}


def _metric_json(m: Era5Metric) -> dict:
    row = asdict(m)
    return {"variable": row["variable"], "level": row["level"], "lead_hours": row["lead_hours"],
            "rmse": _num(row["rmse"]), "bias": _num(row["bias"]), "acc": _num(row["acc"]),
            "skill": _num(row["skill"])}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="gaia-dagster score", description="Score a forecast as validators do.")
    sub = parser.add_subparsers(dest="kind", required=True)
    for kind in ("era5", "day1"):
        p = sub.add_parser(kind)
        p.add_argument("--forecast", required=True)
        p.add_argument("--truth", required=True, help="ERA5 (era5) or the GFS analysis (day1)")
        if kind == "day1":
            p.add_argument("--reference", required=True, help="the GFS forecast from the same T0")
        p.add_argument("--climatology", required=True)
        p.add_argument("--weights", choices=("cos", "area"), default="cos")
        if kind == "era5":
            p.add_argument("--acc", choices=("centred", "uncentred"), default="centred")
        p.add_argument("--profile", choices=sorted(PROFILES), default=None,
                       help="scoring profile: deployed (Gaia v2.9.96, the default) or sound")
        p.add_argument("--variables", default=None,
                       help="comma-separated variable list as Gaia spells it (pressure-level names carry the "
                            "level, e.g. t850; a bare t is every level); default: Gaia's "
                            f"{DEFAULT_ERA5_VARIABLES if kind == 'era5' else DEFAULT_DAY1_VARIABLES}")
        p.add_argument("--init-time", default=None)
        p.add_argument("--scorecard", action="store_true",
                       help="also the regional scorecard (WeatherBench2 regions: RMSE, bias, ACC, skill per field "
                            "and lead), taken in the same pass; it changes no score")
        p.add_argument("--json", action="store_true")
    return parser


def score_stores(args: argparse.Namespace, entries: tuple[VariableEntry, ...]) -> dict:
    """The command's score of the forecast (bounded, ``open_forecast``) against the reference
    stores; a forecast store or chunk beyond the limits raises ``StoreRefused``, whenever it is read."""
    forecast = open_forecast(args.forecast, {e.variable for e in entries})
    truth, clim = open_store(args.truth), open_store(args.climatology)
    t0 = init_time_of(forecast.ds, args.init_time)
    if args.kind == "era5":
        return score_era5_stores(forecast, FieldReader(truth, args.truth), FieldReader(clim, args.climatology), t0,
                                 args.weights, args.acc, args.profile, args.variables, args.scorecard)
    return score_day1_stores(forecast, truth, open_store(args.reference), clim, t0, args.weights, args.profile,
                             args.variables, args.scorecard)


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        entries = parse_variables(args.variables, DEFAULT_ERA5_VARIABLES if args.kind == "era5" else DEFAULT_DAY1_VARIABLES,
                                  single_fields_only=args.kind == "day1")
    except ValueError as exc:
        parser.error(str(exc))
    try:
        out = score_stores(args, entries)
    except StoreRefused as exc:
        print(f"gaia-dagster score: the forecast {args.forecast} is refused: {exc}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps(out))
    else:
        print(f"{args.kind} score {out['score']:.6f} (T0 {out['init_time'][:13]}Z, {len(out['metrics'])} fields, "
              f"profile {out['profile']})")
        if out.get("failure"):
            print(f"  failed: {out['failure']}")
        for lead, score in out["leads"].items():
            print(f"  lead {lead:>3} h: {'missing' if score is None else f'{score:.6f}'}")
        if out["missing"]:
            print(f"  missing: {', '.join(out['missing'][:20])}{' ...' if len(out['missing']) > 20 else ''}")
        _print_scorecard(out.get("scorecard"))
    return 0 if not out.get("failure") else 1


def _print_scorecard(rows: list[dict] | None) -> None:
    """Per region, the median skill against climatology (and GFS) over its fields and leads."""
    regions = list(dict.fromkeys(r["region"] for r in rows or []))
    for region in regions:
        skills = [r["skill"] for r in rows if r["region"] == region and r["skill"] is not None]
        gfs = [r["skill_gfs"] for r in rows if r["region"] == region and r.get("skill_gfs") is not None]
        print(f"  {region:<24} median skill vs climatology {np.median(skills) if skills else math.nan:+.3f}"
              + (f", vs GFS {np.median(gfs):+.3f}" if gfs else ""))


if __name__ == "__main__":
    sys.exit(main())

"""``gaia-dagster score era5|day1``: score a forecast store exactly as the validator does.

Inputs are Zarr (v2 or v3) or netCDF stores in the forecast data contract. Fields are read one
(lead, variable, level) at a time, two at once (decompression releases the GIL), and each is
scored in one fused pass, so memory stays at a few fields whatever the store size. Only numpy,
xarray and the scoring core are imported: no Dagster.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta, timezone
from typing import Iterator

import numpy as np
import xarray as xr

from gaia_dagster.core.contract import (
    ALL_VARIABLES, DAY1_LEAD_HOURS, ERA5_LEAD_HOURS, LEVEL_VARIABLES, PRESSURE_LEVELS,
)
from gaia_dagster.core.scoring.day1 import DAY1_VARIABLES, Day1Field, score_day1
from gaia_dagster.core.scoring.era5 import Era5Metric, era5_score_from_metrics, verification_failure
from gaia_dagster.core.scoring.fused import ReferenceField, fused_metrics
from gaia_dagster.core.scoring.metrics import lat_weights

READ_THREADS = 2


def open_store(path: str) -> xr.Dataset:
    """A Zarr store (v2 or v3, consolidated or not) or a netCDF file, lazily."""
    if path.endswith((".nc", ".nc4", ".netcdf")):
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


@dataclass(frozen=True)
class FieldKey:
    lead_hours: int
    variable: str
    level: int | None

    @property
    def name(self) -> str:
        return self.variable if self.level is None else f"{self.variable}{self.level}"


def plan_fields(forecast: xr.Dataset, truth: xr.Dataset, t0: datetime, leads) -> tuple[list[FieldKey], list[str]]:  # noqa: ANN001
    """Every (lead, variable, level) present in both stores, and the required ones that are missing."""
    times_f = set(forecast["time"].values.astype("datetime64[ns]"))
    times_t = set(truth["time"].values.astype("datetime64[ns]"))
    keys, missing = [], []
    for lead in leads:
        valid = _naive64(t0 + timedelta(hours=lead))
        for variable in ALL_VARIABLES:
            levels = list(PRESSURE_LEVELS) if variable in LEVEL_VARIABLES else [None]
            for level in levels:
                key = FieldKey(lead, variable, level)
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
    """The field on the truth grid: as is when the grids agree, else linearly regridded."""
    same = (da["lat"].size == like["lat"].size and da["lon"].size == like["lon"].size
            and np.allclose(da["lat"].values, like["lat"].values) and np.allclose(da["lon"].values, like["lon"].values))
    if same:
        return np.asarray(da.values)
    return np.asarray(da.interp(lat=like["lat"], lon=like["lon"], method="linear").values)


class FieldReader:
    """Reads (lat, lon) planes by coordinate value; straight from the Zarr arrays when the variable
    needs no decoding (no scale/offset), which skips xarray's per-read overhead."""

    def __init__(self, ds: xr.Dataset, path: str):
        self.ds = ds
        self.group = _zarr_group(path)
        self.index: dict[str, dict] = {}
        for dim in ("time", "pressure_level", "dayofyear", "hour"):
            if dim in ds.coords:
                values = ds[dim].values.astype("datetime64[ns]") if dim == "time" else ds[dim].values.astype(int)
                self.index[dim] = {v.item() if dim != "time" else v: i for i, v in enumerate(values)}

    def plane(self, variable: str, **at) -> np.ndarray:  # noqa: ANN003
        da = self.ds[variable]
        where = tuple(self.index[d][at[d]] if d in at else slice(None) for d in da.dims)
        raw = self.group is not None and not {"scale_factor", "add_offset"} & set(da.encoding)
        return np.asarray(self.group[variable][where] if raw else da[where].values)


def _zarr_group(path: str):  # noqa: ANN202
    if path.endswith((".nc", ".nc4", ".netcdf")):
        return None
    try:
        import zarr

        return zarr.open_group(path, mode="r")
    except Exception:  # noqa: BLE001 - fall back to xarray reads
        return None


def same_grid(a: xr.Dataset, b: xr.Dataset) -> bool:
    """True when two stores share the lat/lon grid (no regridding needed)."""
    return (a["lat"].size == b["lat"].size and a["lon"].size == b["lon"].size
            and np.allclose(a["lat"].values, b["lat"].values) and np.allclose(a["lon"].values, b["lon"].values))


def load_fields(forecast: FieldReader, truth: FieldReader, clim: FieldReader, t0: datetime,
                keys: list[FieldKey]) -> Iterator[tuple[FieldKey, np.ndarray, np.ndarray, np.ndarray]]:
    """(key, forecast, truth, climatology) planes on the truth grid, read ahead on ``READ_THREADS``."""
    regrid_f, regrid_c = not same_grid(forecast.ds, truth.ds), not same_grid(clim.ds, truth.ds)

    def read(key: FieldKey):  # noqa: ANN202
        valid = t0 + timedelta(hours=key.lead_hours)
        level = {} if key.level is None else {"pressure_level": key.level}
        o = truth.plane(key.variable, time=_naive64(valid), **level)
        if regrid_f:
            f = _on_grid(_plane(forecast.ds, key.variable, key.level, valid), _plane(truth.ds, key.variable, key.level, valid))
        else:
            f = forecast.plane(key.variable, time=_naive64(valid), **level)
        if regrid_c:
            c = _on_grid(_climatology_plane(clim.ds, key.variable, key.level, valid),
                         _plane(truth.ds, key.variable, key.level, valid))
        else:
            c = clim.plane(key.variable, dayofyear=valid.timetuple().tm_yday, hour=valid.hour, **level)
        return key, f, o, c

    with ThreadPoolExecutor(READ_THREADS) as pool:
        yield from pool.map(read, keys)


def score_era5_stores(forecast: FieldReader, truth: FieldReader, clim: FieldReader, t0: datetime,
                      weights: str = "cos", acc: str = "centred") -> dict:
    """The ERA5 score of a forecast store, as JSON-ready data."""
    keys, missing = plan_fields(forecast.ds, truth.ds, t0, ERA5_LEAD_HOURS)
    w = lat_weights(truth.ds["lat"].values, weights)
    rows, failure = [], None
    for key, f, o, c in load_fields(forecast, truth, clim, t0, keys):
        problem = verification_failure(f, key.name)
        if problem:
            failure = failure or f"{problem} at lead {key.lead_hours} h"
            continue
        m = fused_metrics(f, ReferenceField.build(o, c, w))
        rows.append(Era5Metric(key.variable, key.level, key.lead_hours, m.rmse, m.bias,
                               m.acc_centred if acc == "centred" else m.acc_uncentred, m.skill, m.reference_rmse))
    leads = sorted({k.lead_hours for k in keys}) or list(ERA5_LEAD_HOURS)
    result = era5_score_from_metrics(rows, ERA5_LEAD_HOURS)
    return {
        "score": 0.0 if failure else result.score, "failure": failure,
        "leads": {str(lead): result.lead_scores.get(lead) for lead in leads},
        "metrics": [_metric_json(m) for m in rows], "missing": missing,
        "init_time": t0.isoformat(), "weights": weights, "acc": acc,
    }


def score_day1_stores(forecast: xr.Dataset, truth: xr.Dataset, reference: xr.Dataset, clim: xr.Dataset,
                      t0: datetime, weights: str = "cos") -> dict:
    """The day-1 score of a forecast store at 12 h against a GFS analysis, with a GFS reference."""
    lead = DAY1_LEAD_HOURS[0]
    valid = t0 + timedelta(hours=lead)
    inputs, missing = {}, []
    for variable, level in DAY1_VARIABLES:
        try:
            o = _plane(truth, variable, level, valid)
            fld = Day1Field(_on_grid(_plane(forecast, variable, level, valid), o), np.asarray(o.values),
                            _on_grid(_plane(reference, variable, level, valid), o),
                            _on_grid(_climatology_plane(clim, variable, level, valid), o))
        except (KeyError, ValueError):
            missing.append(f"{variable if level is None else f'{variable}{level}'}@{lead}h")
            continue
        inputs[(variable, level)] = fld
    result = score_day1(inputs, truth["lat"].values, lead_hours=lead, weights=weights)
    metrics = [{"variable": c.variable, "level": c.level, "lead_hours": c.lead_hours, "rmse": _num(c.rmse),
                "bias": _num(c.bias), "acc": _num(c.acc), "skill": _num(c.skill),
                "clone_distance": _num(c.clone_distance), "clone_penalty": _num(c.clone_penalty),
                "reason": c.reason} for c in result.components]
    return {"score": result.score, "leads": {str(lead): result.score}, "metrics": metrics, "missing": missing,
            "clone_clamped": result.clone_clamped, "init_time": t0.isoformat(), "weights": weights}


def _num(value: float | None) -> float | None:
    return None if value is None or not math.isfinite(value) else float(value)


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
        p.add_argument("--init-time", default=None)
        p.add_argument("--json", action="store_true")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    forecast, truth, clim = open_store(args.forecast), open_store(args.truth), open_store(args.climatology)
    t0 = init_time_of(forecast, args.init_time)
    if args.kind == "era5":
        out = score_era5_stores(FieldReader(forecast, args.forecast), FieldReader(truth, args.truth),
                                FieldReader(clim, args.climatology), t0, args.weights, args.acc)
    else:
        out = score_day1_stores(forecast, truth, open_store(args.reference), clim, t0, args.weights)
    if args.json:
        print(json.dumps(out))
    else:
        print(f"{args.kind} score {out['score']:.6f} (T0 {t0:%Y-%m-%dT%HZ}, {len(out['metrics'])} fields)")
        for lead, score in out["leads"].items():
            print(f"  lead {lead:>3} h: {'missing' if score is None else f'{score:.6f}'}")
        if out["missing"]:
            print(f"  missing: {', '.join(out['missing'][:20])}{' ...' if len(out['missing']) > 20 else ''}")
    return 0 if not out.get("failure") else 1


if __name__ == "__main__":
    sys.exit(main())

"""``gaia-dagster score era5|day1 --profile deployed --variables ...`` equals Gaia v2.9.96's own
scoring code on every field, entry and aggregate of the golden cases (tests/golden: the cases in
gaia_cases.py, Gaia's numbers in gaia_v2_9_96.json and how they were produced)."""

from __future__ import annotations

import json
import math
import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path

import numpy as np
import pytest
import xarray as xr

from gaia_dagster.score import main as score_main

sys.path.insert(0, str(Path(__file__).parent / "golden"))
import gaia_cases as cases  # noqa: E402

GOLDEN = json.loads((Path(__file__).parent / "golden" / "gaia_v2_9_96.json").read_text())
T0 = datetime(2026, 10, 20, tzinfo=timezone.utc)
TOL = 1e-6


def _naive(moment: datetime) -> np.datetime64:
    return np.datetime64(moment.replace(tzinfo=None), "ns")


def write_fields(path: Path, fields: dict, lat: np.ndarray, lon: np.ndarray, times: list[datetime]) -> Path:
    """{(variable, level): [plane per time]} as a float32 Zarr store in the forecast contract layout."""
    data = {}
    for variable in sorted({v for v, _ in fields}):
        levels = sorted(lev for v, lev in fields if v == variable and lev is not None)
        if levels:
            planes = [np.stack([fields[(variable, lev)][i] for lev in levels]) for i in range(len(times))]
            data[variable] = (("time", "pressure_level", "lat", "lon"), np.stack(planes).astype(np.float32))
        else:
            data[variable] = (("time", "lat", "lon"), np.stack(fields[(variable, None)]).astype(np.float32))
    coords = {"time": [_naive(t) for t in times], "lat": lat, "lon": lon}
    levels = sorted({lev for _, lev in fields if lev is not None})
    if levels:
        coords["pressure_level"] = np.array(levels, dtype=np.int64)
    xr.Dataset(data, coords=coords).to_zarr(path, mode="w")
    return path


def write_climatology(path: Path, case: cases.Case, valid: list[datetime]) -> Path:
    """The case's climatology at each valid time's day of year and hour."""
    days = sorted({t.timetuple().tm_yday for t in valid})
    hours = sorted({t.hour for t in valid})
    fields = {key: [c] for key, c in case.climatology.items()}
    ds = xr.open_zarr(write_fields(path.with_suffix(".tmp.zarr"), fields, case.lat, case.lon, [T0])).load()
    ds = ds.isel(time=0, drop=True).expand_dims(dayofyear=days, hour=hours)
    ds.transpose("dayofyear", "hour", ...).to_zarr(path, mode="w")
    return path


@pytest.fixture(scope="module")
def stores(tmp_path_factory):
    """Per case name, a function writing (once) its stores and returning their paths."""
    root = tmp_path_factory.mktemp("golden")
    made: dict[str, dict] = {}

    def era5(name: str) -> dict:
        if name not in made:
            case = cases.ERA5_CASES[name]()
            leads = [h for h in cases.ERA5_GOLDEN_LEADS if h not in case.missing_leads]
            per_lead = [cases.at_lead(case, h) for h in leads]
            lat, lon = case.grid_of_forecast
            times = [T0 + timedelta(hours=h) for h in cases.ERA5_GOLDEN_LEADS]
            made[name] = {
                "forecast": write_fields(root / f"{name}_fc.zarr", {k: [p.forecast[k] for p in per_lead]
                                                                    for k in case.forecast}, lat, lon,
                                         [T0 + timedelta(hours=h) for h in leads]),
                "truth": write_fields(root / f"{name}_era5.zarr", {k: [t] * len(times) for k, t in case.truth.items()},
                                      case.lat, case.lon, times),
                "climatology": write_climatology(root / f"{name}_clim.zarr", case, times),
            }
        return made[name]

    def day1(name: str) -> dict:
        key = f"day1_{name}"
        if key not in made:
            case = cases.DAY1_CASES[name]()
            valid = [T0 + timedelta(hours=12)]
            made[key] = {part: write_fields(root / f"{key}_{part}.zarr",
                                            {k: [v] for k, v in getattr(case, part).items()}, case.lat, case.lon, valid)
                         for part in ("forecast", "truth", "reference")}
            made[key]["climatology"] = write_climatology(root / f"{key}_clim.zarr", case, valid)
        return made[key]

    return {"era5": era5, "day1": day1}


def run_score(capsys, kind: str, paths: dict, variables: str, profile: str = "deployed") -> dict:
    argv = [kind, *(f"--{part}={path}" for part, path in paths.items()), f"--profile={profile}",
            f"--variables={variables}", f"--init-time={T0.isoformat()}", "--json"]
    score_main(argv)
    return json.loads(capsys.readouterr().out.strip().splitlines()[-1])


def close(ours: float | None, gaia: float | None, scale: float = 1.0) -> bool:
    if gaia is None or (isinstance(gaia, float) and math.isnan(gaia)):
        return ours is None
    return ours is not None and abs(ours - gaia) <= TOL * max(1.0, abs(scale))


ERA5_RUNS = sorted(GOLDEN["era5"])


@pytest.mark.parametrize("run", ERA5_RUNS)
def test_era5_cli_equals_gaia(stores, capsys, run):
    """Aggregates: the ERA5 score, each lead's score, each entry's RMSE/ACC/skill at each lead (Gaia's
    stored era5_* rows); a run Gaia gives no ERA5 score is refused."""
    gold = GOLDEN["era5"][run]
    out = run_score(capsys, "era5", stores["era5"](gold["case"]), gold["variables"])
    if not gold["scored"]:
        assert out["failure"] and out["score"] == 0.0
        return
    assert out["failure"] is None and out["variables"] == gold["variables"].split(",")
    assert abs(out["score"] - gold["era5_score"]) < TOL
    assert set(out["leads"]) == set(gold["lead_scores"])
    for lead, want in gold["lead_scores"].items():
        assert abs(out["leads"][lead] - want) < TOL
    entries = {(e["name"], e["lead_hours"]): e for e in out["entries"]}
    assert len(entries) == len(gold["variables"].split(",")) * len(gold["lead_scores"])
    for (name, lead), e in entries.items():
        for kind, ours in (("rmse", e["rmse"]), ("acc", e["acc"]), ("skill_clim", e["skill"])):
            want = gold["metrics"].get(f"era5_{kind}_{name}_{lead}h")
            assert close(ours, want, want or 1.0), (run, name, lead, kind, ours, want)


@pytest.mark.parametrize("run", [r for r in ERA5_RUNS if GOLDEN["era5"][r]["scored"]])
def test_era5_cli_fields_equal_gaia(stores, capsys, run):
    """Every field row: RMSE, ACC and skill per level (Gaia's component rows), and the bias of a
    single-field entry (an unweighted mean). Gaia stores no component rows for a variable whose
    level ACC is NaN at that lead (nan_acc_level); every other field is compared."""
    gold = GOLDEN["era5"][run]
    out = run_score(capsys, "era5", stores["era5"](gold["case"]), gold["variables"])
    rows = {(m["variable"], m["level"], m["lead_hours"]): m for m in out["metrics"]}
    single = {name for name in gold["variables"].split(",") if name not in ("t", "u", "v", "q", "z")}
    n_fields = sum(13 if name in ("t", "u", "v", "q", "z") else 1 for name in gold["variables"].split(","))
    assert len(rows) == n_fields * len(gold["lead_scores"]) and gold["components"]
    for comp in gold["components"]:
        level = None if comp["pressure_level"] is None else int(comp["pressure_level"])
        m = rows[(comp["variable_name"], level, int(comp["lead_hours"]))]
        assert close(m["rmse"], comp["rmse"], comp["rmse"])
        if comp["acc"] is not None:
            assert close(m["acc"], comp["acc"])
        if comp["skill_score"] is not None:
            assert close(m["skill"], comp["skill_score"])
        if f"{comp['variable_name']}{level or ''}" in single:
            assert close(m["bias"], comp["bias"], comp["bias"])


@pytest.mark.parametrize("run", sorted(GOLDEN["day1"]))
def test_day1_cli_equals_gaia(stores, capsys, run):
    """The day-1 score and each variable's skill, ACC, clone distance and penalty."""
    gold = GOLDEN["day1"][run]
    out = run_score(capsys, "day1", stores["day1"](gold["case"]), gold["variables"])
    assert out["failure"] is None and abs(out["score"] - gold["score"]) < TOL
    rows = {f"{m['variable']}{m['level'] or ''}": m for m in out["metrics"]}
    assert set(rows) == set(gold["variables"].split(","))
    for name, want in gold["by_variable"].items():
        m = rows[name]
        assert close(m["skill"], want["skill"]) and close(m["acc"], want["acc"])
        if want["skill"] is not None:
            assert close(m["clone_distance"], want["clone_distance"], want["clone_distance"])
            assert close(m["clone_penalty"], want["clone_penalty"])



@pytest.mark.parametrize("kind, variables, says", [("era5", "2t,t851", "'t851'"), ("day1", "2t,z", "single fields")])
def test_a_bad_variable_list_stops_the_cli_naming_it(capsys, kind, variables, says):
    stores = ["--forecast=f.zarr", "--truth=t.zarr", "--climatology=c.zarr"]
    if kind == "day1":
        stores.append("--reference=r.zarr")
    with pytest.raises(SystemExit) as stopped:
        score_main([kind, *stores, f"--variables={variables}"])
    err = capsys.readouterr().err
    assert stopped.value.code == 2 and says in err and "allowed" in err and "t850" in err

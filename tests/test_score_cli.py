"""``gaia-dagster score``: the command scores stores exactly as an independent xarray computation."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

import numpy as np
import pytest
import xarray as xr

from gaia_dagster.cli import main as cli_main
from gaia_dagster.core.contract import DAY1_LEAD_HOURS, ERA5_LEAD_HOURS
from gaia_dagster.world.atmosphere import SyntheticAtmosphere
from gaia_dagster.world.stores import write_climatology, write_forecast, write_truth

T0 = datetime(2026, 10, 20, tzinfo=timezone.utc)
LEADS = sorted(set(DAY1_LEAD_HOURS) | set(ERA5_LEAD_HOURS))


@pytest.fixture(scope="module")
def stores(tmp_path_factory):
    root = tmp_path_factory.mktemp("stores")
    world = SyntheticAtmosphere(resolution=1.5)
    write_forecast(root / "forecast.zarr", world, "good", T0, leads=LEADS)
    write_forecast(root / "reference.zarr", world, "clone", T0, leads=DAY1_LEAD_HOURS)
    write_truth(root / "era5.zarr", world, T0, leads=ERA5_LEAD_HOURS, zarr_format=3)
    write_truth(root / "analysis.zarr", world, T0, leads=DAY1_LEAD_HOURS)
    write_climatology(root / "clim.zarr", world, [T0 + timedelta(hours=h) for h in LEADS])
    return root


def run_cli(capsys, *args: str) -> dict:
    assert cli_main(["score", *args, "--json"]) == 0
    return json.loads(capsys.readouterr().out.strip().splitlines()[-1])


def independent_metrics(f: xr.DataArray, o: xr.DataArray, c: xr.DataArray) -> dict[str, float]:
    """The same formulas written plainly with xarray's weighted means."""
    w = np.cos(np.deg2rad(o["lat"])).clip(min=0)
    f, o, c = f.astype("float64"), o.astype("float64"), c.astype("float64")

    def wmean(x):  # noqa: ANN001, ANN202
        return float(x.weighted(w).mean(("lat", "lon")))

    corrected = f - float((f - o).mean())
    fa, oa = f - c, o - c
    fa_c, oa_c = fa - wmean(fa), oa - wmean(oa)
    return {"rmse": wmean((f - o) ** 2) ** 0.5, "bias": wmean(f - o),
            "skill": 1 - wmean((corrected - o) ** 2) / wmean((c - o) ** 2),
            "acc": wmean(fa_c * oa_c) / (wmean(fa_c ** 2) * wmean(oa_c ** 2)) ** 0.5}


@pytest.mark.parametrize("profile", ["sound", "deployed"])
def test_era5_command_matches_an_independent_computation(stores, capsys, profile):
    out = run_cli(capsys, "era5", "--forecast", str(stores / "forecast.zarr"), "--truth", str(stores / "era5.zarr"),
                  "--climatology", str(stores / "clim.zarr"), "--profile", profile)
    assert out["profile"] == profile and out["missing"] == [] and len(out["metrics"]) == 10 * 69
    assert set(out["leads"]) == {str(h) for h in ERA5_LEAD_HOURS} and 0.5 < out["score"] <= 1
    f, o, c = (xr.open_zarr(stores / n) for n in ("forecast.zarr", "era5.zarr", "clim.zarr"))
    for m in out["metrics"][::7]:  # a spread of (variable, level, lead)
        valid = np.datetime64((T0 + timedelta(hours=m["lead_hours"])).replace(tzinfo=None), "ns")
        sel = {"pressure_level": m["level"]} if m["level"] is not None else {}
        vt = T0 + timedelta(hours=m["lead_hours"])
        expected = independent_metrics(
            f[m["variable"]].sel(time=valid, **sel), o[m["variable"]].sel(time=valid, **sel),
            c[m["variable"]].sel(dayofyear=vt.timetuple().tm_yday, hour=vt.hour, **sel))
        if profile == "deployed" and m["level"] is None:   # deployed: a surface bias is the unweighted mean
            expected["bias"] = float((f[m["variable"]].sel(time=valid).astype("float64")
                                      - o[m["variable"]].sel(time=valid)).mean())
        for key, value in expected.items():
            assert m[key] == pytest.approx(value, rel=1e-5, abs=1e-9), (m["variable"], m["level"], key)


def test_era5_command_says_what_is_missing_and_reads_t0_from_the_store(stores, capsys):
    out = run_cli(capsys, "era5", "--forecast", str(stores / "reference.zarr"), "--truth", str(stores / "era5.zarr"),
                  "--climatology", str(stores / "clim.zarr"), "--profile", "sound")
    assert out["score"] == 0 and "2t@24h" in out["missing"] and out["init_time"] == T0.isoformat()


def test_era5_command_refuses_a_forecast_chunk_beyond_its_cap_when_it_reaches_it(stores, tmp_path, capsys):
    """A chunk is read through the bounded reader when its plane is scored, in a read-ahead thread:
    a 48 h chunk larger than its cap still refuses the forecast (exit 2, the chunk named)."""
    import shutil

    forecast = shutil.copytree(stores / "forecast.zarr", tmp_path / "forecast.zarr")
    chunk = forecast / "2t" / f"{LEADS.index(48)}.0.0"
    chunk.write_bytes(chunk.read_bytes() + bytes(10 ** 6))
    assert cli_main(["score", "era5", "--forecast", str(forecast), "--truth", str(stores / "era5.zarr"),
                     "--climatology", str(stores / "clim.zarr"), "--variables", "2t,msl", "--json"]) == 2
    err = capsys.readouterr().err
    assert f"the forecast {forecast} is refused: {chunk.relative_to(forecast)} is" in err and "more than the" in err


def test_day1_command_clamps_a_clone(stores, capsys):
    args = ["--truth", str(stores / "analysis.zarr"), "--reference", str(stores / "reference.zarr"),
            "--climatology", str(stores / "clim.zarr"), "--init-time", "2026-10-20T00:00:00Z"]
    clone = run_cli(capsys, "day1", "--forecast", str(stores / "reference.zarr"), *args)
    good = run_cli(capsys, "day1", "--forecast", str(stores / "forecast.zarr"), *args)
    assert clone["clone_clamped"] and clone["score"] <= 0.05
    assert not good["clone_clamped"] and good["score"] > 0.3


@pytest.mark.parametrize("fmt, order", [(2, "C"), (2, "F"), (3, "C")])
def test_field_reader_reads_each_plane_as_zarr_does(tmp_path, fmt, order):
    """A plane read straight from its chunk file (consolidated, C-order chunks) or, for a Fortran-order
    Zarr v2 array, through zarr: the same values either way."""
    import zarr

    from gaia_dagster.resources.zarr_planes import plane_arrays, root_metadata
    from gaia_dagster.score import FieldReader, open_store

    values = np.random.default_rng(3).standard_normal((2, 5, 7)).astype(np.float32)
    ds = xr.Dataset({"2t": (("time", "lat", "lon"), values)},
                    coords={"time": np.array(["2026-10-21", "2026-10-22"], dtype="datetime64[ns]"),
                            "lat": np.linspace(60, -60, 5), "lon": np.arange(7) * 50.0})
    path = str(tmp_path / "store.zarr")
    encoding = {"2t": {"chunks": (1, 5, 7)}} if order == "C" else {}
    ds.to_zarr(path, zarr_format=fmt, consolidated=True, encoding=encoding)
    if order == "F":   # rewrite 2t with Fortran-ordered chunks
        group = zarr.open_group(path, mode="a", zarr_format=2)
        attrs = dict(group["2t"].attrs)
        del group["2t"]
        array = group.create_array("2t", shape=values.shape, chunks=(1, 5, 7), dtype="f4", order="F")
        array[:] = values
        array.attrs.update(attrs)
        zarr.consolidate_metadata(path)
    assert ("2t" in plane_arrays(root_metadata(tmp_path / "store.zarr"))) == (order == "C")
    reader = FieldReader(open_store(path), path)
    for i, t in enumerate(ds["time"].values):
        assert np.array_equal(reader.plane("2t", time=t), values[i])


def test_field_reader_masks_a_fill_value_as_xarray_does(tmp_path):
    from gaia_dagster.score import FieldReader, open_store

    values = np.arange(6, dtype=np.float32).reshape(1, 2, 3)
    ds = xr.Dataset({"2t": (("time", "lat", "lon"), values)},
                    coords={"time": np.array(["2026-10-21"], dtype="datetime64[ns]"), "lat": [45.0, -45.0],
                            "lon": [0.0, 120.0, 240.0]})
    path = str(tmp_path / "filled.zarr")
    ds.to_zarr(path, consolidated=True, encoding={"2t": {"_FillValue": 4.0}})
    plane = FieldReader(open_store(path), path).plane("2t", time=ds["time"].values[0])
    assert np.isnan(plane[1, 1]) and np.array_equal(np.isnan(plane), np.isnan(open_store(path)["2t"].values[0]))

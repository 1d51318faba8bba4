"""The day view (core/day_view.py, db/day_view.py, the day_view asset and its sensor)."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from dagster import DagsterInstance, build_sensor_context, materialize

from gaia_dagster.assets.day_view import day_view
from gaia_dagster.core.day_view import DayJob, day_totals, short_hotkey, sig4, view_row
from gaia_dagster.core.states import ResponseStatus, response_path
from gaia_dagster.definitions import build_definitions
from gaia_dagster.resources.miner import MinerAccess
from gaia_dagster.resources.registry import MinerRegistry
from gaia_dagster.resources.sources import WeatherSources
from gaia_dagster.resources.validator_db import ValidatorDB

S = ResponseStatus
T0 = datetime.now(timezone.utc).replace(hour=0, minute=0, second=0, microsecond=0) - timedelta(days=3)
DATE = f"{T0:%Y-%m-%d}"
HOTKEY = "5GrwvaEF5zXb26Fz9rcQpDWS57CtERHpNehXCPcNoHGKutQY"


def test_numbers_to_4_significant_digits_and_short_hotkeys():
    assert sig4(0.123456789) == 0.1235 and sig4(123456.7) == 123500.0 and sig4(0.000012345678) == 0.00001235
    assert sig4(0.0) == 0.0 and sig4(None) is None and sig4(float("nan")) is None
    assert short_hotkey(HOTKEY) == "5Grwva…utQY" and short_hotkey("hk-a") == "hk-a"


def job(status: str, failed_from: str | None = None, in_run: bool = True, **kw) -> DayJob:
    return DayJob(kw.get("uid", 1), kw.get("hotkey", HOTKEY), status, kw.get("error"), failed_from, in_run,
                  kw.get("day1"), kw.get("era5"), kw.get("leads", 0), 10, kw.get("weight"))


def test_totals_count_each_stage_reached_and_failures_by_cause():
    jobs = [job(S.ERA5_SCORED.value, leads=10), job(S.ERA5_PARTIAL.value, leads=4), job(S.INFERENCE_RUNNING.value),
            job(S.FAILED.value, S.CREATED.value), job(S.FAILED.value, S.INFERENCE_RUNNING.value, in_run=False),
            job(S.FAILED.value, S.INFERENCE_RUNNING.value), job(S.FAILED.value, S.DAY1_SCORING.value),
            job(S.FAILED.value, S.ERA5_SCORING.value)]
    assert day_totals(jobs, asked=9) == {
        "asked": 9, "answered": 7, "verified": 4, "day1_scored": 3, "era5_scored": 1, "failed": 5,
        "failed_ERA5": 1, "failed_day-1": 1, "failed_inference": 1, "failed_request": 1, "failed_verification": 1}


def test_a_row_says_stage_cause_and_reason_on_one_line():
    row = view_row(job(S.FAILED.value, S.INFERENCE_RUNNING.value, in_run=False, error="miner x, job y: no forecast after 10 polls;\n"
                       "last: HTTP 500 " + "z" * 300, day1=None))
    assert (row["stage"], row["cause"]) == ("failed", "inference")
    assert "\n" not in row["reason"] and len(row["reason"]) <= 120 and row["reason"].startswith("no forecast after")
    era5 = view_row(job(S.FAILED.value, S.ERA5_SCORING.value,
                        error=f"miner {HOTKEY}, run T0=2026-10-20T00Z, job 956be95d-c57a: 2t: ACC is not finite"))
    assert era5["reason"] == "2t: ACC is not finite"
    assert view_row(job(S.ERA5_PARTIAL.value, leads=4, day1=0.7512345))["era5_leads"] == "4/10"


def test_a_reason_has_no_word_too_long_to_wrap():
    """A word cannot wrap: a full hotkey or URL in a reason widened its column past 1600 px."""
    error = (f"miner {HOTKEY}, run T0=2026-10-20T00Z: initiate-fetch failed 3 times; last: miner {HOTKEY}, "
             "at http://127.0.0.1:47135/forecast/initiate-fetch: ConnectError")
    reason = view_row(job(S.FAILED.value, S.CREATED.value, error=error))["reason"]
    assert max(map(len, reason.split())) <= 24
    assert reason.startswith(f"initiate-fetch failed 3 times; last: miner {HOTKEY[:6]}…{HOTKEY[-4:]}, at http")
    assert reason.endswith("ConnectError")


def walk(repo, run_id: int, hotkey: str, path: list[str], error: str | None = None) -> int:  # noqa: ANN001
    repo.upsert_miner(hotkey, f"http://10.0.0.{len(path)}:80{len(hotkey)}", uid=len(path))
    response, _ = repo.create_response(run_id, hotkey, "validator", f"job-{hotkey}", "http://x")
    current = S.CREATED.value
    for step in path:
        repo.transition_response(response.id, current, step, error=error if step == S.FAILED.value else None)
        current = step
    return response.id


def test_the_asset_shows_every_miner_and_the_sensor_refreshes_only_on_change(tmp_path):
    db = ValidatorDB(url=f"sqlite:///{tmp_path / 'v.db'}")
    repo = db.repo
    run, _ = repo.get_or_create_run(T0)
    to_day1 = response_path(S.CREATED.value, S.DAY1_SCORED.value)
    scored = walk(repo, run.id, "miner-scored", to_day1)
    repo.record_scores(scored, "day1", [{"lead_hours": 0, "variable": "*", "level": 0, "score": 0.7512345}])
    walk(repo, run.id, "miner-offline", [S.FAILED.value], error="initiate-fetch failed 3 times; last: refused")
    walk(repo, run.id, "miner-polls", [S.FETCH_INITIATED.value, S.INFERENCE_RUNNING.value, S.FAILED.value],
         error="no forecast after 10 polls; last: HTTP 500")
    result = materialize([day_view], partition_key=DATE, resources={"validator_db": db})
    meta = result.asset_materializations_for_node("day_view")[0].metadata
    full = meta["hotkeys"].value       # the table shows short hotkeys; the full ones are beside it
    rows = {full[r.data["miner"]]: r.data for r in meta["miners"].value.records}
    assert rows["miner-offline"]["miner"] == "miner-…line"
    assert rows["miner-scored"]["stage"] == "day-1 scored" and rows["miner-scored"]["day1"] == 0.7512
    assert (rows["miner-offline"]["cause"], rows["miner-polls"]["cause"]) == ("request", "inference")
    assert "HTTP 500" in rows["miner-polls"]["reason"]
    assert meta["failed"].value == 2 and meta["failed_request"].value == 1 and meta["asked"].value == 3
    assert meta["stages"].value.startswith("![day stages](data:image/png;base64,")

    defs = build_definitions({"validator_db": db, "miner_registry": MinerRegistry(path=str(tmp_path / "m.json")),
                              "miner_access": MinerAccess(), "sources": WeatherSources(cache_dir=str(tmp_path / "c"))})
    with DagsterInstance.ephemeral() as instance:
        def keys() -> list[str]:
            context = build_sensor_context(instance=instance, definitions=defs, sensor_name="day_view_sensor",
                                           resources=defs.resources)
            return [r.run_key for r in defs.resolve_sensor_def("day_view_sensor").evaluate_tick(context).run_requests]

        first = keys()
        assert len(first) == 1 and first[0].startswith(f"{DATE}|day_view|") and keys() == first
        repo.transition_response(scored, S.DAY1_SCORED.value, S.ERA5_SCORING.value)
        assert keys() != first

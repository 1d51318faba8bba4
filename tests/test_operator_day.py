"""An operator's day under the real daemon and webserver, read through the UI's own GraphQL: a
never-finishing, a NaN, an offline and a poll-500 miner beside a good one. Exactly those four
partitions show failed across the per-miner assets, none is left materializing, and the day view
lists them with their reasons."""

from __future__ import annotations

import json
import urllib.request

import pytest
from test_daemon_day import DATE, Day  # noqa: E402

from gaia_dagster.fleet import free_port, start_fleet
from gaia_dagster.resources.registry import write_registry

PER_MINER = ("forecast_request", "miner_forecast", "day1_score", "era5_score")
STATUSES = """{ assetNodes(assetKeys: [%s]) { assetKey { path } assetPartitionStatuses { __typename
  ... on MultiPartitionStatuses { ranges { primaryDimStartKey secondaryDim { __typename
    ... on DefaultPartitionStatuses { materializedPartitions failedPartitions materializingPartitions } } } } } } }"""
DAY_VIEW = """{ assetOrError(assetKey: {path: ["day_view"]}) { ... on Asset {
  assetMaterializations(partitions: ["%s"], limit: 1) { metadataEntries { label __typename
    ... on TableMetadataEntry { table { records } } ... on JsonMetadataEntry { jsonString } } } } } }"""


def graphql(port: int, query: str) -> dict:
    request = urllib.request.Request(f"http://127.0.0.1:{port}/graphql", data=json.dumps({"query": query}).encode(),
                                     headers={"content-type": "application/json"})
    with urllib.request.urlopen(request, timeout=60) as answer:
        body = json.loads(answer.read())
    assert "errors" not in body, body
    return body["data"]


def partition_statuses(port: int) -> dict[str, dict[str, set[str]]]:
    """asset -> {materialized|failed|materializing: miners} for the day, as the UI shows it."""
    keys = ", ".join(f'{{path: ["{a}"]}}' for a in PER_MINER)
    out = {}
    for node in graphql(port, STATUSES % keys)["assetNodes"]:
        ranges = node["assetPartitionStatuses"].get("ranges") or []
        dims = [r["secondaryDim"] for r in ranges if r["primaryDimStartKey"] <= DATE]
        out[node["assetKey"]["path"][0]] = {
            kind: {p for d in dims for p in d.get(f"{kind}Partitions", [])}
            for kind in ("materialized", "failed", "materializing")}
    return out


@pytest.mark.timeout(900)
def test_four_failing_miners_show_failed_in_the_ui_and_in_the_day_view(tmp_path):
    day = Day(tmp_path, resolution=10.0)
    port = free_port()
    day.processes.ui_port = port
    profiles = ["good", "nan", "offline", "good", "good"]
    extra = [[], [], [], ["--inference-delay", "100000"], ["--fault", "poll_http500"]]
    with start_fleet(len(profiles), tmp_path / "fleet", resolution=10.0, profiles=profiles,
                     extra_args=extra) as fleet, day.processes:
        write_registry(day.registry, fleet.registry_entries())
        day.processes.launch("daily_seed_job", DATE)
        day.wait("the day's leaderboard", lambda: day.run_status() == "completed", 600)
        day.wait("every run to end", day.all_ended, 120)
        good, nan, offline, never, poll500 = (m.hotkey for m in fleet.miners)
        failing = {nan, offline, never, poll500}
        run = day.repo.run_for_init_time(day.repo.all_runs()[0].gfs_init_time)
        errors = {r.miner_hotkey: r.error for r in day.repo.responses(run_id=run.id)}
        assert "polls" in errors[never] and "polls" in errors[poll500] and "500" in errors[poll500]

        day.wait("the UI to load the code location", lambda: _ui_ready(port), 120)
        statuses = partition_statuses(port)
        failed = set().union(*(s["failed"] for s in statuses.values()))
        assert failed == failing, {a: s["failed"] for a, s in statuses.items()}
        assert not any(s["materializing"] for s in statuses.values())
        assert good in statuses["era5_score"]["materialized"]
        # a failed miner's later stages never claim success
        for hotkey in (never, poll500):
            assert hotkey in statuses["miner_forecast"]["failed"]
            assert hotkey not in statuses["day1_score"]["materialized"] | statuses["era5_score"]["materialized"]

        day.wait("the day view of the finished day", lambda: _day_view_final(port, failing), 120)


def _ui_ready(port: int) -> bool:
    try:
        graphql(port, "{ version }")
        return True
    except OSError:
        return False


def _day_view_final(port: int, failing: set[str]) -> bool:
    """True once the day view lists every failing miner as failed, with a cause and a reason."""
    asset = graphql(port, DAY_VIEW % DATE)["assetOrError"]
    materializations = asset.get("assetMaterializations") or []
    if not materializations:
        return False
    entries = {e["label"]: e for e in materializations[0]["metadataEntries"]}
    full = json.loads(entries["hotkeys"]["jsonString"])
    rows = [json.loads(r) for r in entries["miners"]["table"]["records"]]
    failed = {full[r["miner"]]: r for r in rows if r["stage"] == "failed"}
    return set(failed) == failing and all(r["cause"] and r["reason"] for r in failed.values())

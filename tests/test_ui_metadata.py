"""What an operator sees in the Dagster UI: typed tables that survive None/NaN, PNG and SVG charts, the
miner's UID and full hotkey on every per-miner asset, a configurable first partition date, and a
code location that loads without matplotlib."""

from __future__ import annotations

import base64
import json
import os
import struct
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from types import SimpleNamespace

import numpy as np
import pytest
from dagster import (
    AssetKey, MaterializeResult, MetadataValue, TableMetadataValue, TableRecord, asset, instance_for_test,
    materialize,
)

from gaia_dagster.assets.partitions import DEFAULT_FIRST_DATE, first_date
from gaia_dagster.assets.plots import (
    LEADERBOARD_COLUMNS, leaderboard_chart, leaderboard_table, lead_scores_table, metrics_table, miner_label,
    miner_metadata, score_by_lead_chart, selection_table,
)

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
HOTKEY = "5FHneW46xGXgs5mUiveU4sbTyGBzmstUspZC92UhjJM694ty"   # 48 characters, as on chain


def strict_json(text: str):  # noqa: ANN201
    """Parse as the UI's JSON.parse does: a bare NaN/Infinity token is an error."""
    def reject(token: str):  # noqa: ANN202
        raise ValueError(f"not JSON: {token}")
    return json.loads(text, parse_constant=reject)


def ui_records(value: TableMetadataValue) -> list[dict]:
    """The records as the webserver hands them to the UI (one JSON string per record)."""
    from dagster_graphql.implementation.events import iterate_metadata_entries

    (entry,) = list(iterate_metadata_entries({"t": value}))
    return [strict_json(r) for r in entry.table.records]


def png_of(markdown: MetadataValue) -> bytes:
    text = markdown.value
    assert text.startswith("![") and "](data:image/png;base64," in text and text.endswith(")")
    return base64.b64decode(text.split("base64,", 1)[1][:-1], validate=True)


SVG = "{http://www.w3.org/2000/svg}"


def svg_of(markdown: MetadataValue) -> ET.Element:
    """The SVG document of a chart in markdown (a data URL), parsed: malformed XML fails here."""
    text = markdown.value
    assert text.startswith("![") and "](data:image/svg+xml;base64," in text and text.endswith(")")
    root = ET.fromstring(base64.b64decode(text.split("base64,", 1)[1][:-1], validate=True))
    assert root.tag == f"{SVG}svg"
    return root


LEADERBOARD_ROWS = [
    {"rank": 1, "uid": 0, "hotkey": HOTKEY, "status": "era5_scored", "day1_score": np.float64(0.41),
     "era5_score": 0.73, "overall_score": 0.7435, "weight": 1.0, "error": None},
    {"rank": 2, "uid": None, "hotkey": "hk-no-uid", "status": "failed", "day1_score": float("nan"),
     "era5_score": None, "overall_score": 0.0, "weight": float("inf"), "error": "miner hk-no-uid: 2t is NaN"},
]


# -- tables -----------------------------------------------------------------------------------------

def test_leaderboard_table_is_typed_and_nulls_missing_cells():
    table = leaderboard_table(LEADERBOARD_ROWS)
    assert [(c.name, c.type) for c in table.schema.columns] == [
        ("rank", "int"), ("uid", "int"), ("hotkey", "string"), ("status", "string"), ("day1_score", "float"),
        ("era5_score", "float"), ("overall_score", "float"), ("weight", "float"), ("error", "string")]
    assert all(isinstance(r, TableRecord) for r in table.records)
    first, second = (r.data for r in table.records)
    assert first == {"rank": 1, "uid": 0, "hotkey": HOTKEY, "status": "era5_scored", "day1_score": 0.41,
                     "era5_score": 0.73, "overall_score": 0.7435, "weight": 1.0, "error": None}
    assert type(first["day1_score"]) is float and type(first["uid"]) is int   # numpy scalars converted
    # None, NaN and infinity are null (an empty cell), never a bare NaN token the UI cannot parse.
    assert second == {"rank": 2, "uid": None, "hotkey": "hk-no-uid", "status": "failed", "day1_score": None,
                      "era5_score": None, "overall_score": 0.0, "weight": None, "error": "miner hk-no-uid: 2t is NaN"}
    assert ui_records(table) == [first, second]


def test_table_floats_are_shown_to_4_significant_digits_and_ints_exactly():
    table = lead_scores_table({24: 0.9368572770633862, 48: 1234.56789, 72: -0.000123456789, 96: 0.0,
                               120: float("nan")})
    assert [(r.data["lead_hours"], r.data["score"]) for r in table.records] == [
        (24, 0.9369), (48, 1235.0), (72, -0.0001235), (96, 0.0), (120, None)]
    board = leaderboard_table([{**LEADERBOARD_ROWS[0], "rank": 2 ** 53 + 1, "weight": 2 / 3}])
    assert board.records[0].data["rank"] == 2 ** 53 + 1 and board.records[0].data["weight"] == 0.6667


def test_metrics_selection_and_lead_tables_survive_nan_and_drop_absent_columns():
    era5_rows = [{"variable": "2t", "level": 0, "lead_hours": 24, "rmse": 1.2, "bias": float("nan"),
                  "acc": np.float32(0.9), "skill": None},
                 {"variable": "z", "level": np.int64(500), "lead_hours": 48, "rmse": 30.0, "bias": -1.0,
                  "acc": 0.8, "skill": 0.4}]
    metrics = metrics_table(era5_rows)
    assert [c.name for c in metrics.schema.columns] == ["variable", "level", "lead_hours", "rmse", "bias", "acc",
                                                        "skill"]
    assert ui_records(metrics)[0] == {"variable": "2t", "level": 0, "lead_hours": 24, "rmse": 1.2, "bias": None,
                                      "acc": pytest.approx(0.9), "skill": None}
    assert ui_records(metrics)[1]["level"] == 500
    assert metrics_table([]).records == []

    selection = selection_table([{"position": 0, "uid": 3, "hotkey": HOTKEY, "selected": True, "reason": None},
                                 {"position": 1, "uid": None, "hotkey": "hk-b", "selected": False,
                                  "reason": "inactive"}])
    assert ui_records(selection) == [{"position": 0, "uid": 3, "hotkey": HOTKEY, "selected": True, "reason": None},
                                     {"position": 1, "uid": None, "hotkey": "hk-b", "selected": False,
                                      "reason": "inactive"}]

    leads = lead_scores_table({48: 0.5, 24: float("nan")})
    assert ui_records(leads) == [{"lead_hours": 24, "score": None}, {"lead_hours": 48, "score": 0.5}]


def test_miner_identity_metadata_has_the_uid_and_the_full_hotkey():
    miners = {HOTKEY: SimpleNamespace(uid=7), "hk-b": SimpleNamespace(uid=None)}
    repo = SimpleNamespace(miner=miners.get)
    assert miner_metadata(repo, HOTKEY) == {"miner_uid": MetadataValue.int(7), "miner_hotkey": MetadataValue.text(HOTKEY)}
    assert miner_metadata(repo, "hk-b")["miner_uid"] == MetadataValue.null()
    assert miner_metadata(repo, "unknown")["miner_hotkey"].value == "unknown"
    assert miner_label(repo, HOTKEY) == "uid 7 (5FHneW46…)" and miner_label(repo, "hk-b") == "hk-b"


# -- charts -----------------------------------------------------------------------------------------

def test_charts_are_small_pngs_in_markdown():
    board = leaderboard_chart(LEADERBOARD_ROWS + [{"uid": i, "overall_score": i / 50} for i in range(2, 40)])
    png = png_of(board)
    assert png.startswith(PNG_MAGIC)
    width, height = struct.unpack(">II", png[16:24])              # the IHDR chunk
    assert (width, height) == (480, 240)                          # 6 x 3 in at 80 dpi
    assert len(png) < 60_000
    assert "data:image" not in leaderboard_chart([]).value


def test_the_score_by_lead_chart_is_an_svg_of_the_finite_leads():
    leads = {lead: 0.8 - lead / 400 for lead in range(24, 241, 24)} | {72: float("nan")}
    root = svg_of(score_by_lead_chart(leads, "uid 7 (5FHneW46…)"))
    assert (root.get("width"), root.get("height")) == ("480", "240")
    (line,) = root.iter(f"{SVG}polyline")
    xy = [tuple(map(float, p.split(","))) for p in line.get("points").split()]
    assert len(xy) == 9 == len(list(root.iter(f"{SVG}circle")))      # the NaN lead is left out
    assert [a for a, _ in xy] == sorted(a for a, _ in xy)             # in lead order, left to right
    assert all(b2 > b1 for (_, b1), (_, b2) in zip(xy, xy[1:]))       # falling scores go down the page
    assert all(0 <= a <= 480 and 0 <= b <= 240 for a, b in xy)
    texts = ["".join(t.itertext()) for t in root.iter(f"{SVG}text")]
    assert "ERA5 score against lead: uid 7 (5FHneW46…)" in texts
    assert {"24", "240", "lead (hours)", "lead score"} <= set(texts)
    assert len(score_by_lead_chart(leads, "x").value) < 8_000


def test_the_score_by_lead_chart_escapes_its_label_and_draws_one_lead():
    root = svg_of(score_by_lead_chart({24: -0.25}, 'hk<"&>'))
    assert 'ERA5 score against lead: hk<"&>' in ["".join(t.itertext()) for t in root.iter(f"{SVG}text")]
    ((x, y),) = [tuple(map(float, p.split(","))) for p in next(root.iter(f"{SVG}polyline")).get("points").split()]
    assert 0 < x < 480 and 0 < y < 240
    assert "data:image" not in score_by_lead_chart({24: float("nan")}, "hk").value


# -- the first partition date -----------------------------------------------------------------------

def test_first_date_default_valid_and_malformed():
    assert first_date({}) == DEFAULT_FIRST_DATE == "2026-10-01"
    assert first_date({"GAIA_FIRST_DATE": "  "}) == DEFAULT_FIRST_DATE
    assert first_date({"GAIA_FIRST_DATE": "2026-10-20"}) == "2026-10-20"
    assert first_date({"GAIA_FIRST_DATE": "2026-9-5"}) == "2026-09-05"
    for bad in ("2026-13-01", "20261001", "yesterday", "2026-10-20T00:00"):
        with pytest.raises(ValueError, match="GAIA_FIRST_DATE") as err:
            first_date({"GAIA_FIRST_DATE": bad})
        assert bad in str(err.value) and "YYYY-MM-DD" in str(err.value)


def _python(code: str, **env: str) -> subprocess.CompletedProcess:
    environ = {k: v for k, v in os.environ.items() if k != "GAIA_FIRST_DATE"} | env
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=environ, timeout=120)


def test_daily_partitions_start_at_the_configured_date_and_a_bad_one_stops_the_load():
    code = "from gaia_dagster.assets.partitions import daily_partitions as d; print(d.start.date())"
    assert _python(code).stdout.strip() == DEFAULT_FIRST_DATE
    assert _python(code, GAIA_FIRST_DATE="2026-10-15").stdout.strip() == "2026-10-15"
    bad = _python(code, GAIA_FIRST_DATE="15/10/2026")
    assert bad.returncode != 0 and "GAIA_FIRST_DATE='15/10/2026' is not a date in YYYY-MM-DD form" in bad.stderr


def test_loading_the_code_location_does_not_import_matplotlib():
    done = _python("import sys, gaia_dagster.definitions; "
                   "print(sorted(m for m in sys.modules if m.split('.')[0] == 'matplotlib'))")
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


# -- through a Dagster instance ---------------------------------------------------------------------

def test_table_and_chart_metadata_round_trip_through_the_event_log():
    @asset
    def board() -> MaterializeResult:
        return MaterializeResult(metadata={"leaderboard": leaderboard_table(LEADERBOARD_ROWS),
                                           "leaderboard_chart": leaderboard_chart(LEADERBOARD_ROWS),
                                           "miner_uid": MetadataValue.null()})

    with instance_for_test() as instance:
        assert materialize([board], instance=instance).success
        event = instance.get_latest_materialization_event(AssetKey("board"))
        metadata = event.asset_materialization.metadata
    table = metadata["leaderboard"]
    assert isinstance(table, TableMetadataValue)
    assert [c.name for c in table.schema.columns] == [c.name for c in LEADERBOARD_COLUMNS]
    assert table.records == leaderboard_table(LEADERBOARD_ROWS).records
    assert len(ui_records(table)) == 2
    assert png_of(metadata["leaderboard_chart"]).startswith(PNG_MAGIC)

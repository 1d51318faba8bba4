"""The deployed weight path (core/weights_deployed.py, ``gaia-dagster weights``) against Gaia's own.

The expected numbers (tests/golden/gaia_weights_v2_9_96.json) come from Gaia v2.9.96's weight code
run on the designed inputs of tests/golden/weight_cases.py (how: that file's docstring).
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pytest

from gaia_dagster.core.float32_sum import torch_cpu_sum
from gaia_dagster.core.weights_deployed import (
    DeployedWeights, ScoreRow, WeightEnv, curve, deployed_weights, float32_normalised, quantize_u16, rows_in_window,
)
from gaia_dagster.core.weights_input import WeightInputError, weight_inputs

sys.path.insert(0, str(Path(__file__).parent / "golden"))
from weight_cases import weight_cases  # noqa: E402

GOLDEN = json.loads((Path(__file__).parent / "golden" / "gaia_weights_v2_9_96.json").read_text())["cases"]
CASES = weight_cases()


def ours(case: dict) -> DeployedWeights:
    inputs = weight_inputs(json.loads(json.dumps(case)))
    return deployed_weights(inputs.rows, inputs.nodes, inputs.now, inputs.block, inputs.env)


def assert_same(result: dict, expected: dict, name: str) -> None:
    if expected["weights"] is None:
        assert result["weights"] is None, name
        return
    assert result["uids_u16"] == expected["uids_u16"], name
    assert result["u16"] == expected["u16"], name
    assert len(result["weights"]) == 256
    worst = max(abs(a - b) for a, b in zip(result["weights"], expected["weights"]))
    assert worst <= 1e-7, f"{name}: weights differ by {worst}"


def test_every_designed_case_is_in_the_fixture() -> None:
    assert set(CASES) == set(GOLDEN)


@pytest.mark.parametrize("name", sorted(CASES))
def test_core_equals_gaia(name: str) -> None:
    assert_same(ours(CASES[name]).as_output(), GOLDEN[name], name)


@pytest.mark.parametrize("name", ["typical_14_days_burn_registered", "null_entry", "full_256", "no_nodes"])
def test_cli_equals_gaia(name: str, tmp_path: Path) -> None:
    path = tmp_path / "input.json"
    path.write_text(json.dumps(CASES[name]))
    done = subprocess.run([sys.executable, "-m", "gaia_dagster.cli", "weights", "--input", str(path), "--json"],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert_same(json.loads(done.stdout.strip().splitlines()[-1]), GOLDEN[name], name)


def test_cli_refuses_a_malformed_input_naming_the_field(tmp_path: Path) -> None:
    path = tmp_path / "input.json"
    bad = dict(CASES["one_scoring_uid"], block="soon")
    path.write_text(json.dumps(bad))
    done = subprocess.run([sys.executable, "-m", "gaia_dagster.cli", "weights", "--input", str(path)],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 2
    assert "block" in done.stderr


def test_the_burn_takes_three_quarters_and_validators_get_nothing() -> None:
    result = ours(CASES["validators_that_score"])
    burn_uid = 63
    # the burn UID does not score: it holds 0.75 of the total, a little more once validators are zeroed
    assert 0.75 < result.weights[burn_uid] < 0.8
    assert result.u16[result.uids.index(burn_uid)] == 65535
    # validator permits that set weights less than 500 blocks ago: UIDs 1 and 2 (3 is at 500, 4 at 9000)
    assert result.zeroed_validators == [1, 2]
    assert result.weights[1] == result.weights[2] == 0.0 and result.weights[3] > 0 and result.weights[4] > 0
    assert math.isclose(sum(result.weights), 1.0, rel_tol=1e-12)


def test_a_null_score_stops_the_path_a_nan_string_does_not() -> None:
    assert ours(CASES["null_entry"]).weights is None
    assert "None" in ours(CASES["null_entry"]).reason
    assert ours(CASES["nan_strings_and_short_rows"]).weights is not None


def test_window_patterns_and_order() -> None:
    now = datetime(2026, 11, 20, 3, tzinfo=timezone.utc)
    t = lambda d, h=0: datetime(2026, 11, d, h, tzinfo=timezone.utc)  # noqa: E731
    rows = [ScoreRow("weather_scores_1_x", t(5, 2), []), ScoreRow("weather_scores_2_x", t(5, 3), []),
            ScoreRow("final_weather_scores", t(19), []), ScoreRow("weatherXscoresY3", t(10), []),
            ScoreRow("soil_scores_4", t(18), []), ScoreRow("Weather_scores_5", t(18), [])]
    kept = [r.task_id for r in rows_in_window(rows, now)]
    # 15 days before 11-20 03:00 is 11-05 03:00: the 02:00 row is out, the 03:00 row is in
    assert kept == ["weatherXscoresY3", "weather_scores_2_x", "final_weather_scores"]


def test_curve_falls_back_to_252_when_only_uid_0_scores() -> None:
    weights = np.zeros(256)
    weights[0] = 0.7
    assert curve(weights, 1.3)[252] == 1.0
    weights[5] = 0.7
    assert curve(weights, 1.3)[252] == 0.0


def test_env_is_parsed_as_gaia_parses_it() -> None:
    assert WeightEnv.from_mapping({}).burn_rate == 0.75
    assert WeightEnv.from_mapping({}).exempt_burn_rate == 0.5
    assert WeightEnv.from_mapping({"BURN_RATE": "lots"}).burn_rate == 0.0
    assert WeightEnv.from_mapping({"BURN_RATE": "7"}).burn_rate == 1.0
    assert WeightEnv.from_mapping({"BURN_MINER_EMISSION": "off"}).burn_enabled is False
    assert WeightEnv.from_mapping({"WEIGHT_CONTRAST_GAMMA": "x"}).contrast_gamma == 1.3


def test_torch_order_float32_sum_known_answer() -> None:
    """[1, e x 15] with e = 2^-24 (half an ulp of 1): left to right every e is lost (1.0); the
    exact sum rounds to 1 + 2^-20; PyTorch's 8-lane order adds e + e first in lanes 1-7 and lane
    0's 1 + e + e ties back to 1, then folds the lanes: 1 + 7 x 2^-23."""
    e = np.float32(2.0 ** -24)
    values = np.array([1.0] + [e] * 15, dtype=np.float32)
    assert float(torch_cpu_sum(values)) == 1.0 + 7 * 2.0 ** -23
    left_to_right = np.float32(0)
    for v in values:
        left_to_right = np.float32(left_to_right + v)
    assert float(left_to_right) == 1.0


def test_float32_normalisation_drops_unregistered_and_renormalises() -> None:
    weights = [0.0] * 256
    weights[3], weights[200], weights[7] = 0.5, 0.25, -1.0
    vector = float32_normalised(weights, [0, 3, 7, 9])
    assert vector[200] == 0.0 and vector[7] == 0.0
    assert vector[3] == 1.0
    assert float32_normalised([0.0] * 256, list(range(253)))[252] == 1.0
    assert not any(float32_normalised([0.0] * 256, list(range(252))))


def test_quantize_is_fibers() -> None:
    assert quantize_u16([0.0, 0.5, 0.25, 0.0]) == ([1, 2], [65535, 32768])  # 32767.5 rounds to even
    assert quantize_u16([0.0] * 4) == ([], [])


def test_inputs_refuse_what_is_not_documented() -> None:
    with pytest.raises(WeightInputError, match="now"):
        weight_inputs({"now": "yesterday", "block": 1, "rows": [], "nodes": []})
    with pytest.raises(WeightInputError, match="env"):
        weight_inputs({"now": "2026-11-20T00:00:00Z", "block": 1, "rows": [], "nodes": [], "env": {"PATH": "/"}})
    with pytest.raises(WeightInputError, match=r"nodes\[0\].uid"):
        weight_inputs({"now": "2026-11-20T00:00:00Z", "block": 1, "rows": [], "nodes": [{"uid": "7"}]})

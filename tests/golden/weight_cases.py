"""Designed inputs for the deployed weight path's golden tests (``gaia-dagster weights``).

Each case is one input object of the ``gaia-dagster weights --input`` format. The expected outputs in
``gaia_weights_v2_9_96.json`` beside this file were produced once, outside the project, by running
Gaia v2.9.96's own code (commit b3c98e0) on exactly these inputs: ``_perform_weight_calculations_sync``
of ``gaia/validator/validator.py`` (with the weather query's window, task-id patterns and ordering,
and the node query's columns uid, hotkey, ip, port, incentive), ``apply_burn_from_env`` and
``get_burn_uid_if_enabled`` of ``weights/burn.py``, ``FiberWeightSetter.set_weights`` of
``weights/set_weights.py`` (with PyTorch 2.13 CPU, numpy 2.2.6) and fiber's
``_normalize_and_quantize_weights``, with the database and the substrate replaced by in-memory
stand-ins serving these rows and this metagraph. Only the resulting numbers are kept; none of
Gaia's code is.
"""

from __future__ import annotations

import random

NOW = "2026-11-20T03:00:00Z"
BLOCK = 5_000_000
BURN = "5GmhjCqDTsRcKqPFw4FDig8tVBfFGNrwP8ywe5En5hnELwDQ"


def nodes(count: int, *, validators: dict[int, int] | None = None, no_ip: dict[int, object] | None = None,
          hotkeys: dict[int, str] | None = None, skip: set[int] = frozenset()) -> list[dict]:
    """``count`` registered UIDs (minus ``skip``); ``validators`` maps a UID to blocks since its
    last weights, ``no_ip`` a UID to the IP it shows, ``hotkeys`` a UID to its hotkey."""
    validators, no_ip, hotkeys = validators or {}, no_ip or {}, hotkeys or {}
    return [{"uid": uid, "hotkey": hotkeys.get(uid, f"5Miner{uid:03d}"), "coldkey": f"5Cold{uid % 5}",
             "ip": no_ip.get(uid, f"10.0.{uid // 200}.{uid % 200 + 1}"), "port": 8091, "stake": 10.0 * uid,
             "validator_permit": uid in validators, "last_update": BLOCK - validators.get(uid, 20_000)}
            for uid in range(count) if uid not in skip]


def row(day: int, scores: list, *, task: str | None = None, hour: int = 0) -> dict:
    """A per-run score row created at 2026-11-<day> <hour>:00 (its GFS init)."""
    return {"task_id": task or f"weather_scores_{day}_202611{day:02d}T{hour:02d}00Z",
            "created_at": f"2026-11-{day:02d}T{hour:02d}:00:00Z", "score": scores}


def scores(values: dict[int, object], default: object = 0.0) -> list:
    return [values.get(uid, default) for uid in range(256)]


def seeded_scores(seed: int, uids: range | list[int], low: float = 0.3, high: float = 1.0) -> dict[int, float]:
    rng = random.Random(seed)
    return {uid: round(rng.uniform(low, high), 6) for uid in uids}


def case(rows: list[dict], node_list: list[dict], env: dict | None = None, *, block: int = BLOCK) -> dict:
    return {"now": NOW, "block": block, "rows": rows, "nodes": node_list, "env": env or {}}


def weight_cases() -> dict[str, dict]:
    """The designed cases, by name."""
    base = nodes(64, hotkeys={63: BURN})
    days = [row(d, scores(seeded_scores(d, range(1, 40)))) for d in range(6, 20)]
    cases = {
        "typical_14_days_burn_registered": case(days, base),
        "burn_unregistered": case(days, nodes(64)),
        "burn_uid_scores": case(days[:3] + [row(19, scores({**seeded_scores(5, range(1, 40)), 63: 0.9}), hour=6)], base),
        "ties_at_max": case([row(d, scores({uid: (1.0 if uid < 6 else 0.5 + uid / 200) for uid in range(1, 30)}))
                             for d in (10, 11, 12)], base),
        "all_equal_contrast_boost": case([row(15, scores({uid: 0.8 for uid in range(1, 25)}))], base),
        "all_zero": case([row(d, scores({})) for d in (10, 11)], base),
        "no_rows": case([], base),
        "one_scoring_uid": case([row(12, scores({17: 0.62}))], base),
        "only_uid_0_scores": case([row(12, scores({0: 0.7}))], base),
        "missing_days": case([row(d, scores(seeded_scores(d, range(1, 20)))) for d in (6, 9, 17)], base),
        "stale_rows_outside_window": case([row(d, scores(seeded_scores(d, range(1, 20)))) for d in (1, 3, 4)]
                                          + [row(5, scores(seeded_scores(50, range(10, 30))), hour=3),
                                             row(5, scores(seeded_scores(51, range(30, 50))), hour=2)], base),
        "nan_strings_and_short_rows": case([row(10, scores({**seeded_scores(3, range(1, 30)), 4: "NaN", 5: "nan", 6: "x"})),
                                            row(11, scores(seeded_scores(4, range(1, 30)), default="NaN")),
                                            row(12, [0.5] * 100)], base),
        "null_entry": case([row(10, scores(seeded_scores(3, range(1, 30)))), row(11, scores({3: 0.5, 4: None}))], base),
        "validators_that_score": case(days[-4:], nodes(64, hotkeys={63: BURN}, validators={1: 10, 2: 499, 3: 500, 4: 9000, 63: 5})),
        "nodes_without_ip": case(days[-4:], nodes(64, hotkeys={63: BURN}, no_ip={1: "", 2: "0", 3: None, 4: "0.0.0.0", 5: 0})),
        "env_burn_half_gamma_2": case([row(15, scores({uid: 0.8 + uid / 10_000 for uid in range(1, 25)}))],
                                      base, {"BURN_RATE": "0.5", "WEIGHT_CONTRAST_GAMMA": "2"}),
        "env_burn_off": case(days, base, {"BURN_MINER_EMISSION": "false"}),
        "env_other_burn_hotkey": case(days, base, {"BURN_HOTKEY": "5Miner010"}),
        "env_burn_rate_unparseable": case(days, base, {"BURN_RATE": "lots"}),
        "task_id_patterns": case([row(10, scores(seeded_scores(7, range(1, 20))), task="final_weather_scores"),
                                  row(11, scores(seeded_scores(8, range(1, 20))), task="initial_weather_scores_9"),
                                  row(12, scores(seeded_scores(9, range(1, 20))), task="weatherXscoresY12"),
                                  row(13, scores(seeded_scores(10, range(1, 20))), task="soil_scores_13"),
                                  row(14, scores(seeded_scores(11, range(1, 20))), task="Weather_scores_14")], base),
        "negative_scores": case([row(10, scores({1: -0.2, 2: 0.4, 3: 0.9, 4: -1.0}))], base),
        "sparse_registration": case(days[-3:], nodes(64, hotkeys={63: BURN}, skip={2, 3, 7, 11, 20, 21})),
        "no_nodes": case(days[-3:], []),
        "fallback_252_registered": case([row(10, scores({}))], nodes(256)),
        "full_256": case([row(d, scores(seeded_scores(100 + d, range(256), 0.0, 1.1))) for d in range(6, 20)],
                         nodes(256, hotkeys={255: BURN}, validators={0: 3, 1: 100, 2: 900}, no_ip={9: ""})),
    }
    return cases

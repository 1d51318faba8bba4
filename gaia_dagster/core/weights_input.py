"""The input of ``gaia-dagster weights``: what Gaia's weight path reads, as one JSON object.

``{"now": ISO8601, "block": int, "rows": [{"task_id", "created_at", "score": [256 entries]}],
"nodes": [{"uid", "hotkey", "coldkey", "ip", "port", "stake", "validator_permit", "last_update"}],
"env": {"BURN_RATE" | "BURN_HOTKEY" | "BURN_MINER_EMISSION" | "WEIGHT_CONTRAST_GAMMA": str}}``.
Score entries are kept as given (a number, null or a string such as "NaN"): how each counts is the
weight path's rule, not the reader's. Times without a zone are UTC.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Mapping

from gaia_dagster.core.weights_deployed import Node, ScoreRow

ENV_KEYS = ("BURN_RATE", "BURN_HOTKEY", "BURN_MINER_EMISSION", "WEIGHT_CONTRAST_GAMMA")


class WeightInputError(ValueError):
    """The input file is not in the documented form; the message names the field."""


@dataclass(frozen=True)
class WeightInputs:
    now: datetime
    block: int
    rows: list[ScoreRow]
    nodes: list[Node]
    env: dict[str, str]


def parse_time(text: Any, where: str) -> datetime:
    """An ISO 8601 time (a trailing Z allowed); without a zone it is UTC."""
    if not isinstance(text, str):
        raise WeightInputError(f"{where}: expected an ISO 8601 time, got {text!r}")
    try:
        moment = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        raise WeightInputError(f"{where}: {text!r} is not an ISO 8601 time") from None
    return moment.replace(tzinfo=timezone.utc) if moment.tzinfo is None else moment


def _int(value: Any, where: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise WeightInputError(f"{where}: expected an integer, got {value!r}")
    return value


def _row(obj: Any, i: int) -> ScoreRow:
    if not isinstance(obj, Mapping):
        raise WeightInputError(f"rows[{i}]: expected an object")
    if not isinstance(obj.get("task_id"), str):
        raise WeightInputError(f"rows[{i}].task_id: expected a string")
    return ScoreRow(obj["task_id"], parse_time(obj.get("created_at"), f"rows[{i}].created_at"), obj.get("score"))


def _node(obj: Any, i: int) -> Node:
    if not isinstance(obj, Mapping):
        raise WeightInputError(f"nodes[{i}]: expected an object")
    return Node(uid=_int(obj.get("uid"), f"nodes[{i}].uid"), hotkey=obj.get("hotkey"), ip=obj.get("ip"),
                port=obj.get("port"), coldkey=obj.get("coldkey"), stake=obj.get("stake") or 0.0,
                validator_permit=bool(obj.get("validator_permit")), last_update=_int(obj.get("last_update", 0) or 0,
                                                                                     f"nodes[{i}].last_update"))


def weight_inputs(obj: Any) -> WeightInputs:
    """The parsed input; ``WeightInputError`` naming the first field that is not as documented."""
    if not isinstance(obj, Mapping):
        raise WeightInputError("the input must be one JSON object")
    rows, nodes, env = obj.get("rows", []), obj.get("nodes", []), obj.get("env") or {}
    if not isinstance(rows, list) or not isinstance(nodes, list):
        raise WeightInputError("rows and nodes must be lists")
    if not isinstance(env, Mapping) or any(k not in ENV_KEYS for k in env):
        raise WeightInputError(f"env: an object with keys among {', '.join(ENV_KEYS)}")
    return WeightInputs(parse_time(obj.get("now"), "now"), _int(obj.get("block"), "block"),
                        [_row(r, i) for i, r in enumerate(rows)], [_node(n, i) for i, n in enumerate(nodes)],
                        {k: str(v) for k, v in env.items()})

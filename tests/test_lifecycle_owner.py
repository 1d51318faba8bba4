"""One owner of every status change (stages/lifecycle.py) and status names only from core/states.py,
checked over the package's source."""

from __future__ import annotations

import ast
from pathlib import Path

from gaia_dagster.core.states import MinerJobStatus, ResponseStatus, RunStatus, WeightStatus

PACKAGE = Path(__file__).resolve().parents[1] / "gaia_dagster"
STATUS_WORDS = {s.value for s in (*ResponseStatus, *RunStatus, *WeightStatus, *MinerJobStatus)}
# stand-ins of outside services answer in those services' own words (the CDS API's request states)
FOREIGN_VOCABULARY = {PACKAGE / "world" / "standin_servers.py"}
FIELD_NAME_CALLS = {"get", "pop", "setdefault", "TableColumn"}
WRITERS = {"transition_response", "advance_run", "_compare_and_set"}


def sources() -> list[Path]:
    return [p for p in PACKAGE.rglob("*.py") if "migrations" not in p.parts]


def field_names(tree: ast.AST) -> set[int]:
    """ids of string constants naming a field, not a status: dict keys, subscripts, the key of a
    ``.get``/``.pop``/``.setdefault`` and a table column's name."""
    ids = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Dict):
            ids |= {id(k) for k in node.keys if k is not None}
        elif isinstance(node, ast.Subscript):
            ids.add(id(node.slice))
        elif isinstance(node, ast.Call) and node.args:
            name = node.func.attr if isinstance(node.func, ast.Attribute) else getattr(node.func, "id", "")
            if name in FIELD_NAME_CALLS:
                ids.add(id(node.args[0]))
    return ids


def test_no_quoted_status_word_outside_core_states():
    found = []
    for path in sources():
        if path == PACKAGE / "core" / "states.py" or path in FOREIGN_VOCABULARY:
            continue
        tree = ast.parse(path.read_text())
        skip = field_names(tree)
        docstrings = {id(n.body[0].value) for n in ast.walk(tree)
                      if isinstance(n, (ast.Module, ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef))
                      and n.body and isinstance(n.body[0], ast.Expr) and isinstance(n.body[0].value, ast.Constant)}
        for node in ast.walk(tree):
            if (isinstance(node, ast.Constant) and isinstance(node.value, str) and node.value in STATUS_WORDS
                    and id(node) not in skip and id(node) not in docstrings):
                found.append(f"{path.relative_to(PACKAGE)}:{node.lineno} {node.value!r}")
    assert found == []


def test_only_the_lifecycle_owner_writes_a_status():
    callers = []
    for path in sources():
        if path.name == "repository.py" or path == PACKAGE / "stages" / "lifecycle.py":
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr in WRITERS:
                callers.append(f"{path.relative_to(PACKAGE)}:{node.lineno} {node.func.attr}")
    assert callers == []

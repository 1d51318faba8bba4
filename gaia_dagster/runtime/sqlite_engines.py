"""Dagster's SQLite storages: one SQLAlchemy engine per database file and process.

Dagster's SQLite run, schedule and event-log storages build a new SQLAlchemy engine for every
statement they run (``create_engine(url, poolclass=NullPool)``, then connect, then dispose). An
engine is ~1.4 ms of CPU to build and initialise on its first connection, against ~0.8 ms for the
statement itself; a run writes ~15 events, each through one or more such engines, and every sensor
tick of the daemon updates its state and its tick through several. These engines hold no pooled
connection (``NullPool``: each ``connect()`` opens the file and closing closes it), so keeping one per
database file changes nothing about locking or what is read: a connection is still opened and
closed per statement, only the engine object and its dialect set-up are reused.

Only SQLite URLs with ``NullPool`` are kept, so PostgreSQL storages (``deploy/dagster.yaml``) and
any pooled engine are built as before. At most ``MAX_KEPT`` engines are kept (each run has its own
event-log database; a long-lived daemon sees thousands), the least recently used dropped first.
"""

from __future__ import annotations

import importlib
import threading
from collections import OrderedDict
from typing import Any

import sqlalchemy
from sqlalchemy.engine import Engine
from sqlalchemy.pool import NullPool

# Dagster's modules that build an engine per statement, each through its own ``create_engine`` name.
DAGSTER_SQLITE_STORAGES: tuple[str, ...] = (
    "dagster._core.storage.runs.sqlite.sqlite_run_storage",
    "dagster._core.storage.schedules.sqlite.sqlite_schedule_storage",
    "dagster._core.storage.event_log.sqlite.sqlite_event_log",
    "dagster._core.storage.event_log.sqlite.consolidated_sqlite_event_log",
)
MAX_KEPT = 64

_BUILD = sqlalchemy.create_engine
_KEPT: OrderedDict[tuple, Engine] = OrderedDict()
_LOCK = threading.Lock()


def is_unpooled_sqlite(url: Any, kwargs: dict) -> bool:  # noqa: ANN401 - a str or sqlalchemy URL
    """Rule: an engine may be kept when it is SQLite without a pool (each connection opened and
    closed by its user); anything else is built as asked."""
    return str(url).startswith("sqlite") and kwargs.get("poolclass") is NullPool and set(kwargs) <= {
        "poolclass", "connect_args"}


def kept_engine(url: Any, **kwargs: Any) -> Engine:  # noqa: ANN401 - sqlalchemy's own signature
    """``create_engine``, answered with this process's engine for the same SQLite file and options."""
    if not is_unpooled_sqlite(url, kwargs):
        return _BUILD(url, **kwargs)
    key = (str(url), tuple(sorted((kwargs.get("connect_args") or {}).items())))
    with _LOCK:
        engine = _KEPT.pop(key, None) or _BUILD(url, **kwargs)
        _KEPT[key] = engine
        while len(_KEPT) > MAX_KEPT:
            _KEPT.popitem(last=False)
    return engine


def keep_sqlite_engines() -> None:
    """Have Dagster's SQLite storages reuse one engine per database file (idempotent)."""
    for name in DAGSTER_SQLITE_STORAGES:
        module = importlib.import_module(name)
        if getattr(module, "create_engine", None) is not kept_engine:
            module.create_engine = kept_engine

"""Dagster's storage schema, read from disk once per process.

Every time Dagster opens a SQLite storage (the run, schedule and event-log index databases when an
instance opens; each run's own event-log database when the run is created and again when its
worker starts) it checks the database's Alembic revision against the head of its migration
scripts, and Alembic answers by loading every migration script from disk again: ~40 ms of the
~48 ms it takes to open an instance. The code server opens one for every sensor tick (a sensor's
resources are built with one), the daemon checks a new database for every run it creates, and each
run worker checks its own. The scripts are part of the installed Dagster release and do not change
while a process runs, so this module keeps each script directory Dagster asks for, once per process.

Only Dagster's own script directories are kept (``script_location`` ``dagster:...``); the
validator DB's migrations (``db/migrate``) are read as before.
"""

from __future__ import annotations

import threading
from typing import Any

from alembic.config import Config
from alembic.script import ScriptDirectory

_READ_FROM_DISK = ScriptDirectory.from_config.__func__
_KEPT: dict[tuple[type, str], ScriptDirectory] = {}
_LOCK = threading.Lock()


def is_dagster_schema(script_location: str | None) -> bool:
    """Rule: a script directory is Dagster's own when its location is in the ``dagster`` package
    (``dagster:_core/storage/alembic``)."""
    return bool(script_location) and script_location.startswith("dagster:")


def _from_config(cls: type, config: Config) -> Any:  # noqa: ANN401 - alembic's own return type
    """``ScriptDirectory.from_config``, answered from this process's copy for Dagster's schemas."""
    location = config.get_main_option("script_location")
    if not is_dagster_schema(location):
        return _READ_FROM_DISK(cls, config)
    key = (cls, location)
    with _LOCK:
        if key not in _KEPT:
            _KEPT[key] = _READ_FROM_DISK(cls, config)
        return _KEPT[key]


def keep_dagster_schema_heads() -> None:
    """Read each of Dagster's migration script directories once per process (idempotent)."""
    if getattr(ScriptDirectory.from_config, "__func__", None) is not _from_config:
        ScriptDirectory.from_config = classmethod(_from_config)

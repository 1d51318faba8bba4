"""Dagster's storage schema is read from disk once per process (runtime/schema_heads.py); each
database's own revision is still read every time it is checked."""

from __future__ import annotations

import sqlite3
import subprocess
import sys

from alembic.config import Config
from alembic.script import ScriptDirectory
from dagster import DagsterInstance
from dagster._core.instance.ref import InstanceRef
from dagster._core.storage.runs.sqlite import sqlite_run_storage
from dagster._core.storage.sql import check_alembic_revision, create_engine, get_alembic_config

from gaia_dagster.db.migrate import MIGRATIONS
from gaia_dagster.runtime.schema_heads import _READ_FROM_DISK, is_dagster_schema, keep_dagster_schema_heads

# Counts how often Alembic reads a script directory's migrations from disk while instances open.
COUNT_READS = """
import sys, tempfile
from alembic.script import ScriptDirectory
from dagster import DagsterInstance
from dagster._core.instance.ref import InstanceRef
reads = []
original = ScriptDirectory._load_revisions
def counted(self):
    reads.append(self.dir)
    return original(self)
ScriptDirectory._load_revisions = counted
if sys.argv[1] == "kept":
    from gaia_dagster.runtime.schema_heads import keep_dagster_schema_heads
    keep_dagster_schema_heads()
ref = InstanceRef.from_dir(tempfile.mkdtemp())
for _ in range(5):
    with DagsterInstance.from_ref(ref) as instance:
        instance.get_runs(limit=1)
print(len(reads))
"""


def _reads(mode: str) -> int:
    out = subprocess.run([sys.executable, "-c", COUNT_READS, mode], capture_output=True, text=True, check=True)
    return int(out.stdout.strip().splitlines()[-1])


def test_opening_instances_reads_dagsters_migrations_once_per_process():
    as_dagster_does = _reads("plain")
    kept = _reads("kept")
    assert as_dagster_does >= 5 * 2        # every open checks its storages against the head, from disk
    assert 1 <= kept <= 3                  # each of Dagster's script directories once


def test_only_dagsters_own_script_directories_are_kept():
    keep_dagster_schema_heads()
    keep_dagster_schema_heads()            # idempotent
    dagster_config = Config()
    dagster_config.set_main_option("script_location", "dagster:_core/storage/alembic")
    assert ScriptDirectory.from_config(dagster_config) is ScriptDirectory.from_config(dagster_config)
    ours = Config()
    ours.set_main_option("script_location", str(MIGRATIONS))
    assert ScriptDirectory.from_config(ours) is not ScriptDirectory.from_config(ours)
    assert is_dagster_schema("dagster:_core/storage/alembic") and not is_dagster_schema(str(MIGRATIONS))
    assert not is_dagster_schema(None)


def test_a_database_behind_dagsters_schema_still_reads_as_behind(tmp_path):
    keep_dagster_schema_heads()
    with DagsterInstance.from_ref(InstanceRef.from_dir(str(tmp_path))) as instance:
        instance.get_runs(limit=1)
    config = get_alembic_config(sqlite_run_storage.__file__)
    head = _READ_FROM_DISK(ScriptDirectory, config).as_revision_number("head")
    engine = create_engine(f"sqlite:///{tmp_path / 'history' / 'runs.db'}")
    with engine.connect() as conn:
        assert check_alembic_revision(config, conn) == (head, head)
    with sqlite3.connect(tmp_path / "history" / "runs.db") as conn:
        conn.execute("UPDATE alembic_version SET version_num = '8f2b1e6fe2c4'")  # an old revision
    with engine.connect() as conn:
        assert check_alembic_revision(config, conn) == ("8f2b1e6fe2c4", head)

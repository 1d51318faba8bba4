"""Dagster's SQLite storages build one engine per database file and process
(runtime/sqlite_engines.py); every statement still opens and closes its own connection, so processes
sharing the files see each other's writes exactly as before."""

from __future__ import annotations

import multiprocessing
import subprocess
import sys

from dagster import DagsterInstance, asset, materialize
from dagster._core.instance.ref import InstanceRef
from sqlalchemy.pool import NullPool, QueuePool

from gaia_dagster.runtime import sqlite_engines
from gaia_dagster.runtime.sqlite_engines import MAX_KEPT, is_unpooled_sqlite, keep_sqlite_engines, kept_engine

# Counts the engines SQLAlchemy builds while an instance is opened and a run of one asset executes.
COUNT_ENGINES = """
import sys, tempfile
import sqlalchemy
built = []
original = sqlalchemy.create_engine
def counted(*args, **kwargs):
    built.append(str(args[0]))
    return original(*args, **kwargs)
sqlalchemy.create_engine = counted   # before Dagster and the module under test bind it
if sys.argv[1] == "kept":
    from gaia_dagster.runtime.sqlite_engines import keep_sqlite_engines
    keep_sqlite_engines()
from dagster import DagsterInstance, asset, materialize
from dagster._core.instance.ref import InstanceRef

@asset
def one(context):
    context.log.info("one")
    return 1

with DagsterInstance.from_ref(InstanceRef.from_dir(tempfile.mkdtemp())) as instance:
    for _ in range(3):
        assert materialize([one], instance=instance).success
    print(len(built), len(set(built)))
"""


def _engines(mode: str) -> tuple[int, int]:
    out = subprocess.run([sys.executable, "-c", COUNT_ENGINES, mode], capture_output=True, text=True, check=True)
    built, files = out.stdout.strip().splitlines()[-1].split()
    return int(built), int(files)


def test_a_run_builds_one_engine_per_database_file_not_one_per_statement():
    as_dagster_does, files = _engines("plain")
    kept, kept_files = _engines("kept")
    assert as_dagster_does >= 10 * files          # three runs: an engine for every statement
    assert kept == kept_files == files            # one per database file (runs, index, schedules, each run)


def test_only_unpooled_sqlite_engines_are_kept(tmp_path):
    url = f"sqlite:///{tmp_path / 'a.db'}"
    assert kept_engine(url, poolclass=NullPool) is kept_engine(url, poolclass=NullPool)
    assert kept_engine(url, poolclass=NullPool, connect_args={"timeout": 15}) is not kept_engine(
        url, poolclass=NullPool)                   # other options: another engine
    assert not is_unpooled_sqlite(url, {"poolclass": QueuePool})
    assert not is_unpooled_sqlite(url, {})
    assert not is_unpooled_sqlite("postgresql://postgres@127.0.0.1/x", {"poolclass": NullPool})
    assert kept_engine(url, poolclass=QueuePool) is not kept_engine(url, poolclass=QueuePool)


def test_the_engines_kept_are_bounded(tmp_path):
    first = kept_engine(f"sqlite:///{tmp_path / 'first.db'}", poolclass=NullPool)
    for k in range(MAX_KEPT + 10):
        kept_engine(f"sqlite:///{tmp_path / f'{k}.db'}", poolclass=NullPool)
    assert len(sqlite_engines._KEPT) <= MAX_KEPT
    assert kept_engine(f"sqlite:///{tmp_path / 'first.db'}", poolclass=NullPool) is not first   # dropped, built again


@asset
def counted_asset(context):  # noqa: ANN001, ANN201
    context.log.info("counted")
    return 1


def _materialize_times(home: str, times: int) -> None:
    """In a process forked with the parent's kept engines: materialize ``times`` runs."""
    with DagsterInstance.from_ref(InstanceRef.from_dir(home)) as instance:
        for _ in range(times):
            assert materialize([counted_asset], instance=instance).success


def test_forked_processes_sharing_kept_engines_lose_no_write(tmp_path):
    keep_sqlite_engines()
    home = str(tmp_path)
    _materialize_times(home, 1)                   # the parent holds engines for every file before forking
    workers = [multiprocessing.get_context("fork").Process(target=_materialize_times, args=(home, 4)) for _ in range(3)]
    for worker in workers:
        worker.start()
    _materialize_times(home, 4)
    for worker in workers:
        worker.join(120)
        assert worker.exitcode == 0
    with DagsterInstance.from_ref(InstanceRef.from_dir(home)) as instance:
        runs = instance.get_runs()
        assert len(runs) == 1 + 4 * 4 and all(r.is_success for r in runs)
        events = instance.fetch_materializations(counted_asset.key, limit=100).records
        assert len(events) == 17

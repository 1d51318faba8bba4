"""Shared fixtures: validator DBs on SQLite and on the real PostgreSQL server."""

from __future__ import annotations

import os
import uuid

import pytest

# Compressed backoffs for every Dagster retry policy built at import time (the demo does the same).
os.environ.setdefault("GAIA_RETRY_SCALE", "0.002")
# Dagster's telemetry uploader deletes $DAGSTER_HOME/logs: off in every Dagster process of the tests.
os.environ["DAGSTER_DISABLE_TELEMETRY"] = "1"

PG_URL = os.environ.get("GAIA_TEST_PG_URL", "postgresql+psycopg2://postgres@127.0.0.1:5432/postgres")


def _pg_available() -> str | None:
    """None when the PostgreSQL server answers, else why not."""
    try:
        import sqlalchemy

        engine = sqlalchemy.create_engine(PG_URL)
        with engine.connect() as conn:
            conn.execute(sqlalchemy.text("select 1"))
        engine.dispose()
        return None
    except Exception as exc:  # noqa: BLE001
        return str(exc).splitlines()[0]


@pytest.fixture(scope="session")
def pg_server_url() -> str:
    """The PostgreSQL server URL; skips without a server unless GAIA_REQUIRE_POSTGRES=1 (CI)."""
    problem = _pg_available()
    if problem:
        if os.environ.get("GAIA_REQUIRE_POSTGRES") == "1":
            pytest.fail(f"PostgreSQL is required (GAIA_REQUIRE_POSTGRES=1) but unreachable: {problem}")
        pytest.skip(f"PostgreSQL not available: {problem}")
    return PG_URL


@pytest.fixture
def pg_url(pg_server_url: str):
    """A fresh, empty PostgreSQL database for one test, dropped afterwards."""
    import sqlalchemy

    name = f"gaia_test_{uuid.uuid4().hex[:10]}"
    admin = sqlalchemy.create_engine(pg_server_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sqlalchemy.text(f'CREATE DATABASE "{name}"'))
    base = pg_server_url.rsplit("/", 1)[0]
    yield f"{base}/{name}"
    with admin.connect() as conn:
        conn.execute(sqlalchemy.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request, tmp_path):
    """The validator DB on both backends."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'validator.db'}"
    return request.getfixturevalue("pg_url")


@pytest.fixture
def repo(db_url):
    """A validator repository on each backend, schema at the latest migration."""
    from gaia_dagster.db.repository import ValidatorRepository

    r = ValidatorRepository(db_url)
    r.create_schema()
    yield r
    r.engine.dispose()

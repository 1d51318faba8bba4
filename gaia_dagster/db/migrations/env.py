"""Alembic environment of the validator DB (run through ``gaia_dagster.db.migrate``)."""

from __future__ import annotations

from alembic import context

from gaia_dagster.db.models import Base

config = context.config
connection = config.attributes.get("connection")
if connection is None:
    raise RuntimeError("run migrations through gaia_dagster.db.migrate.upgrade(), which passes a connection")
context.configure(connection=connection, target_metadata=Base.metadata, render_as_batch=True)
with context.begin_transaction():
    context.run_migrations()

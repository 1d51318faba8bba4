"""Miner liveness (last missed run) and the per-run selection audit.

Revision ID: 0002
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("weather_miners") as batch:
        batch.add_column(sa.Column("last_missed_run_id", sa.Integer))
    op.create_table(
        "weather_run_selections",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("run_id", sa.Integer, sa.ForeignKey("weather_forecast_runs.id"), nullable=False),
        sa.Column("miner_hotkey", sa.String(64), nullable=False),
        sa.Column("position", sa.Integer, nullable=False),
        sa.Column("selected", sa.Boolean, nullable=False),
        sa.Column("reason", sa.Text),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.UniqueConstraint("run_id", "miner_hotkey", name="uq_selection_run_miner"),
    )


def downgrade() -> None:
    op.drop_table("weather_run_selections")
    with op.batch_alter_table("weather_miners") as batch:
        batch.drop_column("last_missed_run_id")

"""Frozen manifests: the manifest of each verified response, pinned for every later read.

Revision ID: 0003
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "weather_frozen_manifests",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("response_id", sa.Integer, sa.ForeignKey("weather_miner_responses.id"), nullable=False,
                  unique=True),
        sa.Column("run_id", sa.Integer, sa.ForeignKey("weather_forecast_runs.id"), nullable=False),
        sa.Column("miner_hotkey", sa.String(64), nullable=False),
        sa.Column("manifest_hash", sa.String(64), nullable=False),
        sa.Column("files", sa.Text, nullable=False),
        sa.Column("data_digest", sa.String(64), nullable=False),
        sa.Column("frozen_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_frozen_run_data_digest", "weather_frozen_manifests", ["run_id", "data_digest"])


def downgrade() -> None:
    op.drop_index("ix_frozen_run_data_digest", table_name="weather_frozen_manifests")
    op.drop_table("weather_frozen_manifests")

"""Content fingerprints of verified forecasts, which find copies by content (issue 18).

Revision ID: 0007
"""

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "weather_forecast_fingerprints",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("response_id", sa.Integer(), sa.ForeignKey("weather_miner_responses.id"), nullable=False,
                  unique=True),
        sa.Column("run_id", sa.Integer(), sa.ForeignKey("weather_forecast_runs.id"), nullable=False),
        sa.Column("miner_hotkey", sa.String(64), nullable=False),
        sa.Column("seed", sa.String(64), nullable=False),
        sa.Column("n_fields", sa.Integer(), nullable=False),
        sa.Column("n_points", sa.Integer(), nullable=False),
        sa.Column("samples", sa.LargeBinary(), nullable=False),
        sa.Column("recorded_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_fingerprint_run", "weather_forecast_fingerprints", ["run_id"])


def downgrade() -> None:
    op.drop_index("ix_fingerprint_run", table_name="weather_forecast_fingerprints")
    op.drop_table("weather_forecast_fingerprints")

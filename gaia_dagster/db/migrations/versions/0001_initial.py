"""The validator DB: runs, miners, responses, scores, transition audit, duplicate events.

Revision ID: 0001
"""

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

UTC = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "weather_forecast_runs",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("gfs_init_time", UTC, nullable=False, unique=True),
        sa.Column("run_key", sa.String(64), nullable=False, unique=True),
        sa.Column("status", sa.String(32), nullable=False),
        sa.Column("error", sa.Text),
        sa.Column("created_at", UTC, nullable=False),
        sa.Column("updated_at", UTC, nullable=False),
    )
    op.create_table(
        "weather_miners",
        sa.Column("hotkey", sa.String(64), primary_key=True),
        sa.Column("base_url", sa.String(512), nullable=False),
        sa.Column("uid", sa.Integer),
        sa.Column("active", sa.Boolean, nullable=False),
        sa.Column("consecutive_misses", sa.Integer, nullable=False),
        sa.Column("first_missed_run_id", sa.Integer),
        sa.Column("registered_at", UTC, nullable=False),
        sa.Column("last_seen_at", UTC),
    )
    op.create_table(
        "weather_miner_responses",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("run_id", sa.Integer, sa.ForeignKey("weather_forecast_runs.id"), nullable=False),
        sa.Column("miner_hotkey", sa.String(64), nullable=False),
        sa.Column("validator_hotkey", sa.String(64), nullable=False),
        sa.Column("job_id", sa.String(64), nullable=False),
        sa.Column("status", sa.String(32), nullable=False),
        sa.Column("miner_base_url", sa.String(512), nullable=False),
        sa.Column("zarr_store_url", sa.String(1024)),
        sa.Column("verification_hash_claimed", sa.String(128)),
        sa.Column("verification_hash_computed", sa.String(128)),
        sa.Column("query_attempts", sa.Integer, nullable=False),
        sa.Column("poll_attempts", sa.Integer, nullable=False),
        sa.Column("day1_attempts", sa.Integer, nullable=False),
        sa.Column("era5_attempts", sa.Integer, nullable=False),
        sa.Column("next_attempt_at", UTC),
        sa.Column("error", sa.Text),
        sa.Column("created_at", UTC, nullable=False),
        sa.Column("updated_at", UTC, nullable=False),
        sa.Column("forecast_ready_at", UTC),
        sa.UniqueConstraint("run_id", "miner_hotkey", name="uq_response_run_miner"),
        sa.UniqueConstraint("job_id", name="uq_response_job_id"),
    )
    op.create_index("ix_response_status", "weather_miner_responses", ["status"])
    op.create_table(
        "weather_miner_scores",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("response_id", sa.Integer, sa.ForeignKey("weather_miner_responses.id"), nullable=False),
        sa.Column("score_type", sa.String(16), nullable=False),
        sa.Column("lead_hours", sa.Integer, nullable=False),
        sa.Column("variable", sa.String(16), nullable=False),
        sa.Column("level", sa.Integer, nullable=False),
        sa.Column("score", sa.Float),
        sa.Column("rmse", sa.Float),
        sa.Column("bias", sa.Float),
        sa.Column("acc", sa.Float),
        sa.Column("skill", sa.Float),
        sa.Column("clone_distance", sa.Float),
        sa.Column("clone_penalty", sa.Float),
        sa.Column("created_at", UTC, nullable=False),
        sa.UniqueConstraint("response_id", "score_type", "lead_hours", "variable", "level",
                            name="uq_score_component"),
    )
    op.create_table(
        "weather_state_transitions",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("entity", sa.String(16), nullable=False),
        sa.Column("entity_id", sa.Integer, nullable=False),
        sa.Column("from_status", sa.String(32), nullable=False),
        sa.Column("to_status", sa.String(32), nullable=False),
        sa.Column("accepted", sa.Boolean, nullable=False),
        sa.Column("reason", sa.Text),
        sa.Column("dagster_run_id", sa.String(64)),
        sa.Column("at", UTC, nullable=False),
    )
    op.create_table(
        "weather_duplicate_events",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("stage", sa.String(32), nullable=False),
        sa.Column("outcome", sa.String(16), nullable=False),
        sa.Column("key", sa.String(256), nullable=False),
        sa.Column("detail", sa.Text),
        sa.Column("at", UTC, nullable=False),
    )


def downgrade() -> None:
    for table in ("weather_duplicate_events", "weather_state_transitions", "weather_miner_scores",
                  "weather_miner_responses", "weather_miners", "weather_forecast_runs"):
        op.drop_table(table)

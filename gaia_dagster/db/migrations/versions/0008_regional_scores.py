"""Regional scorecards: per WeatherBench2 region, lead and field, a miner's RMSE, bias, ACC and skill
(issue 19).

Revision ID: 0008
"""

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "weather_regional_scores",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("response_id", sa.Integer(), sa.ForeignKey("weather_miner_responses.id"), nullable=False),
        sa.Column("score_type", sa.String(16), nullable=False),
        sa.Column("region", sa.String(32), nullable=False),
        sa.Column("lead_hours", sa.Integer(), nullable=False),
        sa.Column("variable", sa.String(16), nullable=False),
        sa.Column("level", sa.Integer(), nullable=False),
        *(sa.Column(name, sa.Float()) for name in ("rmse", "bias", "acc", "skill", "reference_rmse", "skill_gfs",
                                                    "gfs_rmse")),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.UniqueConstraint("response_id", "score_type", "region", "lead_hours", "variable", "level",
                            name="uq_regional_score"),
    )


def downgrade() -> None:
    op.drop_table("weather_regional_scores")

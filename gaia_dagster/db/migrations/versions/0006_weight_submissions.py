"""The weights of each slot of the chain's cadence, with the exact call and its outcome.

Revision ID: 0006
"""

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "weather_weight_submissions",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("slot_key", sa.String(128), nullable=False, unique=True),
        sa.Column("block", sa.Integer(), nullable=False),
        sa.Column("profile", sa.String(16), nullable=False),
        sa.Column("mode", sa.String(16), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("call", sa.Text(), nullable=False),
        sa.Column("vector", sa.Text()),
        sa.Column("error", sa.Text()),
        sa.Column("computed_at", sa.DateTime(timezone=True), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("weather_weight_submissions")

"""The slow lane of store reads: when a job's store first read below the fast lane's floor (issue 18,
run slots shared fairly). Null: the job's reads are in the fast lane.

Revision ID: 0009
"""

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("weather_miner_responses") as batch:
        batch.add_column(sa.Column("slow_store_at", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("weather_miner_responses") as batch:
        batch.drop_column("slow_store_at")

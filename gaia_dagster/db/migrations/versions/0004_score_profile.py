"""Every score row records the scoring profile it was computed under (deployed or sound).

Revision ID: 0004
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("weather_miner_scores") as batch:
        batch.add_column(sa.Column("profile", sa.String(16), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("weather_miner_scores") as batch:
        batch.drop_column("profile")

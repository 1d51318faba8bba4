"""A miner is listed while the latest registry read (file or metagraph) names it; a miner that
left the registry stays in the DB with its history, unlisted, and is no longer selected.

Revision ID: 0005
"""

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("weather_miners") as batch:
        batch.add_column(sa.Column("listed", sa.Boolean(), nullable=False, server_default=sa.true()))


def downgrade() -> None:
    with op.batch_alter_table("weather_miners") as batch:
        batch.drop_column("listed")

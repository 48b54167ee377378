"""The data path of each instance, recorded at its first `up` (issue 9, item 2).

Down, purge and preview gc delete only this folder, never one named by DATA_PATH later.
Instances recorded before this migration get theirs at their next deploy.

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-24
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("instances") as batch:  # SQLite cannot ALTER ... ADD with batch off
        batch.add_column(sa.Column("data_path", sa.String(1000), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("instances") as batch:
        batch.drop_column("data_path")

"""Who holds a lock, told apart across machines and PID namespaces.

A pid only means something on the kernel boot and in the PID namespace it was taken
in; a lock row records both, and the holder's start time to see through pid reuse.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-30
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("locks") as batch:  # SQLite cannot ALTER ... ADD with batch off
        batch.add_column(sa.Column("boot_id", sa.String(64), nullable=True))
        batch.add_column(sa.Column("pid_ns", sa.String(64), nullable=True))
        batch.add_column(sa.Column("started", sa.BigInteger, nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("locks") as batch:
        for column in ("started", "pid_ns", "boot_id"):
            batch.drop_column(column)

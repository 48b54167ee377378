"""Signed approvals and a keyed audit chain (issue 9.7).

Approvals keep the signed payload and the SSH signature, so the gate can check them again
at any time; the audit log names, per row, the key that chains it (NULL: a plain SHA-256
row written before audit keys, kept as it is).

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-30
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("approvals") as batch:
        batch.add_column(sa.Column("principal", sa.String(200), nullable=True))
        batch.add_column(sa.Column("key_fingerprint", sa.String(100), nullable=True))
        batch.add_column(sa.Column("payload", sa.Text, nullable=True))
        batch.add_column(sa.Column("signature", sa.Text, nullable=True))
    with op.batch_alter_table("audit_log") as batch:
        batch.add_column(sa.Column("key_id", sa.String(32), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("audit_log") as batch:
        batch.drop_column("key_id")
    with op.batch_alter_table("approvals") as batch:
        for column in ("signature", "payload", "key_fingerprint", "principal"):
            batch.drop_column(column)

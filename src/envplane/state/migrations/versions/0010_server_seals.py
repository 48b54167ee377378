"""Seal the server's users, tokens and apps with a key kept outside the database (issue 14).

Each row carries an HMAC of what it grants, under a key derived from the server's audit key:
whoever can write the database but not read that key cannot add a user, reset a password,
mint or revive a token, or point an app at another spec. Rows without a seal count for nothing.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None

TABLES = ("server_users", "server_tokens", "server_apps")


def upgrade() -> None:
    for table in TABLES:
        with op.batch_alter_table(table) as batch:
            batch.add_column(sa.Column("seal", sa.String(64), nullable=True))


def downgrade() -> None:
    for table in TABLES:
        with op.batch_alter_table(table) as batch:
            batch.drop_column("seal")

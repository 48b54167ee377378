"""The server's own state (issue 14): users, API tokens, registered apps.

Passwords are kept as scrypt hashes and tokens as SHA-256 hashes; neither in clear.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "server_users",
        sa.Column("id", sa.Integer, nullable=False),
        sa.Column("name", sa.String(100), nullable=False),
        sa.Column("password_hash", sa.String(300), nullable=False),
        sa.Column("scopes", sa.String(1000), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_server_users"),
        sa.UniqueConstraint("name", name="uq_server_users_name"),
    )
    op.create_table(
        "server_tokens",
        sa.Column("id", sa.Integer, nullable=False),
        sa.Column("name", sa.String(100), nullable=False),
        sa.Column("token_hash", sa.String(64), nullable=False),
        sa.Column("scopes", sa.String(1000), nullable=False),
        sa.Column("owner", sa.String(100), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("created_by", sa.String(200), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_used_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_server_tokens"),
        sa.UniqueConstraint("name", name="uq_server_tokens_name"),
        sa.UniqueConstraint("token_hash", name="uq_server_tokens_token_hash"),
    )
    op.create_table(
        "server_apps",
        sa.Column("id", sa.Integer, nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("spec_path", sa.String(1000), nullable=False),
        sa.Column("added_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("added_by", sa.String(200), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_server_apps"),
        sa.UniqueConstraint("name", name="uq_server_apps_name"),
    )


def downgrade() -> None:
    op.drop_table("server_apps")
    op.drop_table("server_tokens")
    op.drop_table("server_users")

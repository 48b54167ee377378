"""The proxy's routes of running instances, so `proxy up` can restore them.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "proxy_routes",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("app", sa.String(200), nullable=False),
        sa.Column("instance", sa.String(100), nullable=False),
        sa.Column("route", sa.JSON, nullable=False),
        sa.Column("live", sa.String(16), nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_proxy_routes"),
        sa.UniqueConstraint("app", "instance", name="uq_proxy_routes_app"),
    )


def downgrade() -> None:
    op.drop_table("proxy_routes")

"""Backups and drills (issue 13): every backup run and every drill, with its outcome.

The backup store holds the backups themselves (manifest + parts); these rows say what
ran here, when, and how it ended, so `backups status` can tell a schedule that has not
succeeded, and a drill's RPO and RTO are kept.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "backups",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("app", sa.String(200), nullable=False),
        sa.Column("env", sa.String(100), nullable=False),
        sa.Column("instance", sa.String(100), nullable=False),
        sa.Column("backup_id", sa.String(64), nullable=False),
        sa.Column("store", sa.String(1000), nullable=False),
        sa.Column("status", sa.String(32), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("size", sa.BigInteger, nullable=True),
        sa.Column("release", sa.String(100), nullable=True),
        sa.Column("actor", sa.String(200), nullable=False),
        sa.Column("detail", sa.JSON, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_backups"),
        sa.UniqueConstraint("app", "backup_id", name="uq_backups_app"),
    )
    op.create_table(
        "drills",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("app", sa.String(200), nullable=False),
        sa.Column("env", sa.String(100), nullable=False),
        sa.Column("target", sa.String(100), nullable=False),
        sa.Column("backup_id", sa.String(64), nullable=True),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("ok", sa.Boolean, nullable=False),
        sa.Column("rpo_seconds", sa.Float, nullable=True),
        sa.Column("rto_seconds", sa.Float, nullable=True),
        sa.Column("actor", sa.String(200), nullable=False),
        sa.Column("detail", sa.JSON, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_drills"),
    )


def downgrade() -> None:
    op.drop_table("drills")
    op.drop_table("backups")

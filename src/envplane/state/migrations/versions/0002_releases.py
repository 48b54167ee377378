"""Releases, approvals, gate results; the colour of a blue-green deployment.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-23
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def _when(name: str) -> sa.Column[object]:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=False)


def upgrade() -> None:
    with op.batch_alter_table("deployments") as batch:  # SQLite cannot ALTER ... ADD with batch off
        batch.add_column(sa.Column("colour", sa.String(16), nullable=True))
    op.create_table(
        "releases",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("app", sa.String(200), nullable=False),
        sa.Column("version", sa.String(100), nullable=False),
        sa.Column("ref", sa.String(200), nullable=True),
        sa.Column("commit", sa.String(64), nullable=True),
        sa.Column("images", sa.JSON, nullable=False),
        sa.Column("actor", sa.String(200), nullable=False),
        _when("created_at"),
        sa.PrimaryKeyConstraint("id", name="pk_releases"),
        sa.UniqueConstraint("app", "version", name="uq_releases_app"),
    )
    op.create_table(
        "approvals",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("app", sa.String(200), nullable=False),
        sa.Column("version", sa.String(100), nullable=False),
        sa.Column("env", sa.String(100), nullable=False),
        sa.Column("actor", sa.String(200), nullable=False),
        _when("at"),
        sa.PrimaryKeyConstraint("id", name="pk_approvals"),
    )
    op.create_table(
        "gate_results",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("evaluation", sa.Integer, nullable=False),
        sa.Column("app", sa.String(200), nullable=False),
        sa.Column("version", sa.String(100), nullable=False),
        sa.Column("env", sa.String(100), nullable=False),
        sa.Column("gate", sa.String(50), nullable=False),
        sa.Column("ok", sa.Boolean, nullable=False),
        sa.Column("detail", sa.String(1000), nullable=False),
        sa.Column("actor", sa.String(200), nullable=False),
        _when("at"),
        sa.PrimaryKeyConstraint("id", name="pk_gate_results"),
    )
    op.create_index("ix_gate_results_evaluation", "gate_results", ["evaluation"])


def downgrade() -> None:
    op.drop_index("ix_gate_results_evaluation", "gate_results")
    for table in ("gate_results", "approvals", "releases"):
        op.drop_table(table)
    with op.batch_alter_table("deployments") as batch:
        batch.drop_column("colour")

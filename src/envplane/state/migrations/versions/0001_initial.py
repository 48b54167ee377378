"""Initial state store: instances, deployments, steps, audit log, locks.

Revision ID: 0001
Revises:
Create Date: 2024-06-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def _when(name: str, nullable: bool = False) -> sa.Column[object]:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def upgrade() -> None:
    op.create_table(
        "instances",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("app", sa.String(200), nullable=False),
        sa.Column("env", sa.String(100), nullable=False),
        sa.Column("instance", sa.String(100), nullable=False),
        sa.Column("status", sa.String(32), nullable=False),
        sa.Column("ref", sa.String(200), nullable=True),
        _when("created_at"),
        _when("updated_at"),
        _when("last_deploy_at", nullable=True),
        _when("closed_at", nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_instances"),
        sa.UniqueConstraint("app", "env", "instance", name="uq_instances_app"),
    )
    op.create_table(
        "deployments",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("instance_id", sa.Integer, nullable=False),
        sa.Column("ref", sa.String(200), nullable=True),
        sa.Column("version", sa.String(200), nullable=True),
        sa.Column("status", sa.String(32), nullable=False),
        sa.Column("actor", sa.String(200), nullable=False),
        _when("started_at"),
        _when("finished_at", nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_deployments"),
        sa.ForeignKeyConstraint(
            ["instance_id"], ["instances.id"], name="fk_deployments_instance_id_instances"
        ),
    )
    op.create_index("ix_deployments_instance_id", "deployments", ["instance_id"])
    op.create_table(
        "deployment_steps",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("deployment_id", sa.Integer, nullable=False),
        sa.Column("index", sa.Integer, nullable=False),
        sa.Column("kind", sa.String(100), nullable=False),
        sa.Column("description", sa.String(1000), nullable=False),
        sa.Column("status", sa.String(32), nullable=False),
        _when("started_at"),
        _when("finished_at", nullable=True),
        sa.Column("detail", sa.JSON, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_deployment_steps"),
        sa.ForeignKeyConstraint(
            ["deployment_id"],
            ["deployments.id"],
            name="fk_deployment_steps_deployment_id_deployments",
            ondelete="CASCADE",
        ),
        sa.UniqueConstraint("deployment_id", "index", name="uq_deployment_steps_deployment_id"),
    )
    op.create_index("ix_deployment_steps_deployment_id", "deployment_steps", ["deployment_id"])
    op.create_table(
        "audit_log",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
        _when("at"),
        sa.Column("actor", sa.String(200), nullable=False),
        sa.Column("action", sa.String(100), nullable=False),
        sa.Column("app", sa.String(200), nullable=True),
        sa.Column("env", sa.String(100), nullable=True),
        sa.Column("instance", sa.String(100), nullable=True),
        sa.Column("outcome", sa.String(32), nullable=False),
        sa.Column("detail", sa.JSON, nullable=False),
        sa.Column("prev_hash", sa.String(64), nullable=False),
        sa.Column("hash", sa.String(64), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_audit_log"),
        sa.UniqueConstraint("hash", name="uq_audit_log_hash"),
    )
    op.create_table(
        "locks",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("app", sa.String(200), nullable=False),
        sa.Column("env", sa.String(100), nullable=False),
        sa.Column("instance", sa.String(100), nullable=False),
        sa.Column("holder", sa.String(200), nullable=False),
        sa.Column("pid", sa.Integer, nullable=False),
        sa.Column("host", sa.String(255), nullable=False),
        sa.Column("token", sa.String(32), nullable=False),
        _when("acquired_at"),
        _when("expires_at"),
        sa.PrimaryKeyConstraint("id", name="pk_locks"),
        sa.UniqueConstraint("app", "env", "instance", name="uq_locks_app"),
    )


def downgrade() -> None:
    for table in ("locks", "audit_log", "deployment_steps", "deployments", "instances"):
        op.drop_table(table)

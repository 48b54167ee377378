"""The server's scheduler (issue 14): every run of every job, with its outcome and its next run.

A job is one kind of work for one registered app (preview-gc, backup, drill). Its rows say
when it ran, how it ended and why, and when it runs next, so a job that has not succeeded
within its expected interval is an alert — never silence (coolify#4539, #7779) — and a
second server on the same store sees that the run happened.

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "scheduler_runs",
        sa.Column("id", sa.Integer, nullable=False),
        sa.Column("job", sa.String(64), nullable=False),
        sa.Column("app", sa.String(200), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("outcome", sa.String(32), nullable=False),
        sa.Column("message", sa.Text, nullable=False),
        sa.Column("next_run_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("server", sa.String(300), nullable=False),
        sa.Column("detail", sa.JSON, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_scheduler_runs"),
    )
    op.create_index("ix_scheduler_runs_job", "scheduler_runs", ["job", "app", "started_at"])


def downgrade() -> None:
    op.drop_index("ix_scheduler_runs_job", table_name="scheduler_runs")
    op.drop_table("scheduler_runs")

"""The server's jobs (issue 14): every long operation `envplane serve` ran — up, down,
previews, releases — with its outcome and its numbered events, so a job, its outcome and
its event stream (from any Last-Event-ID) are still there after the server restarts.

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "server_jobs",
        sa.Column("id", sa.String(32), nullable=False),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("app", sa.String(200), nullable=False),
        sa.Column("env", sa.String(100), nullable=True),
        sa.Column("instance", sa.String(200), nullable=True),
        sa.Column("started_by", sa.String(200), nullable=False),
        sa.Column("server", sa.String(300), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("result", sa.JSON, nullable=True),
        sa.Column("problem", sa.JSON, nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_server_jobs"),
    )
    op.create_index("ix_server_jobs_state", "server_jobs", ["state", "created_at"])
    op.create_table(
        "server_job_events",
        sa.Column("job_id", sa.String(32), nullable=False),
        sa.Column("seq", sa.Integer, nullable=False),
        sa.Column("data", sa.JSON, nullable=False),
        sa.PrimaryKeyConstraint("job_id", "seq", name="pk_server_job_events"),
    )


def downgrade() -> None:
    op.drop_table("server_job_events")
    op.drop_index("ix_server_jobs_state", table_name="server_jobs")
    op.drop_table("server_jobs")

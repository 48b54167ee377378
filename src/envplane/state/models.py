"""Tables of the state store, as SQLAlchemy 2 typed declarative models.

The migration in `migrations/versions/` creates the same tables by hand; a test
compares the two so they cannot drift.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, ClassVar

from sqlalchemy import (
    JSON,
    Boolean,
    DateTime,
    Dialect,
    ForeignKey,
    Integer,
    MetaData,
    String,
    TypeDecorator,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

NAMING = {
    "ix": "ix_%(table_name)s_%(column_0_name)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class UTCDateTime(TypeDecorator[datetime]):
    """A timestamp that is always an aware UTC datetime in Python.

    SQLite keeps no time zone and PostgreSQL returns the session's; audit hashes
    need the same value back that went in.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime: store UTC-aware datetimes only")
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)
    type_annotation_map: ClassVar[dict[Any, Any]] = {datetime: UTCDateTime(), dict[str, Any]: JSON()}


class Instance(Base):
    """One environment instance: (app, env, instance) such as (shop, test, pr-123)."""

    __tablename__ = "instances"
    __table_args__ = (UniqueConstraint("app", "env", "instance"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    app: Mapped[str] = mapped_column(String(200))
    env: Mapped[str] = mapped_column(String(100))
    instance: Mapped[str] = mapped_column(String(100))
    status: Mapped[str] = mapped_column(String(32))
    ref: Mapped[str | None] = mapped_column(String(200))
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]
    last_deploy_at: Mapped[datetime | None]
    closed_at: Mapped[datetime | None]


class Deployment(Base):
    __tablename__ = "deployments"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    instance_id: Mapped[int] = mapped_column(ForeignKey("instances.id"), index=True)
    ref: Mapped[str | None] = mapped_column(String(200))
    version: Mapped[str | None] = mapped_column(String(200))
    status: Mapped[str] = mapped_column(String(32))
    actor: Mapped[str] = mapped_column(String(200))
    started_at: Mapped[datetime]
    finished_at: Mapped[datetime | None]
    colour: Mapped[str | None] = mapped_column(String(16))  # blue-green: the colour deployed


class DeploymentStep(Base):
    __tablename__ = "deployment_steps"
    __table_args__ = (UniqueConstraint("deployment_id", "index"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    deployment_id: Mapped[int] = mapped_column(
        ForeignKey("deployments.id", ondelete="CASCADE"), index=True
    )
    index: Mapped[int] = mapped_column(Integer)
    kind: Mapped[str] = mapped_column(String(100))
    description: Mapped[str] = mapped_column(String(1000))
    status: Mapped[str] = mapped_column(String(32))
    started_at: Mapped[datetime]
    finished_at: Mapped[datetime | None]
    detail: Mapped[dict[str, Any]]


class AuditEntryRow(Base):
    """One audit row. `id` is assigned by envplane (last + 1) so a gap means a deletion."""

    __tablename__ = "audit_log"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    at: Mapped[datetime]
    actor: Mapped[str] = mapped_column(String(200))
    action: Mapped[str] = mapped_column(String(100))
    app: Mapped[str | None] = mapped_column(String(200))
    env: Mapped[str | None] = mapped_column(String(100))
    instance: Mapped[str | None] = mapped_column(String(100))
    outcome: Mapped[str] = mapped_column(String(32))
    detail: Mapped[dict[str, Any]]
    prev_hash: Mapped[str] = mapped_column(String(64))
    hash: Mapped[str] = mapped_column(String(64), unique=True)


class LockRow(Base):
    """The lock of one environment instance; `token` tells one holding apart from the next."""

    __tablename__ = "locks"
    __table_args__ = (UniqueConstraint("app", "env", "instance"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    app: Mapped[str] = mapped_column(String(200))
    env: Mapped[str] = mapped_column(String(100))
    instance: Mapped[str] = mapped_column(String(100))
    holder: Mapped[str] = mapped_column(String(200))
    pid: Mapped[int] = mapped_column(Integer)
    host: Mapped[str] = mapped_column(String(255))
    token: Mapped[str] = mapped_column(String(32))
    acquired_at: Mapped[datetime]
    expires_at: Mapped[datetime]


class ReleaseRow(Base):
    """A built version of an app: the exact image of every service, promoted as it is."""

    __tablename__ = "releases"
    __table_args__ = (UniqueConstraint("app", "version"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    app: Mapped[str] = mapped_column(String(200))
    version: Mapped[str] = mapped_column(String(100))
    ref: Mapped[str | None] = mapped_column(String(200))
    commit: Mapped[str | None] = mapped_column(String(64))
    images: Mapped[dict[str, Any]]  # service -> {"ref", "id", "digest"}
    actor: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime]


class ApprovalRow(Base):
    __tablename__ = "approvals"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    app: Mapped[str] = mapped_column(String(200))
    version: Mapped[str] = mapped_column(String(100))
    env: Mapped[str] = mapped_column(String(100))
    actor: Mapped[str] = mapped_column(String(200))
    at: Mapped[datetime]


class GateResultRow(Base):
    """One gate of one evaluation; `evaluation` groups the gates of one `promote` run."""

    __tablename__ = "gate_results"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    evaluation: Mapped[int] = mapped_column(Integer, index=True)
    app: Mapped[str] = mapped_column(String(200))
    version: Mapped[str] = mapped_column(String(100))
    env: Mapped[str] = mapped_column(String(100))
    gate: Mapped[str] = mapped_column(String(50))
    ok: Mapped[bool] = mapped_column(Boolean)
    detail: Mapped[str] = mapped_column(String(1000))
    actor: Mapped[str] = mapped_column(String(200))
    at: Mapped[datetime]

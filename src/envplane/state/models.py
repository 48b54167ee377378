"""Tables of the state store, as SQLAlchemy 2 typed declarative models.

The migration in `migrations/versions/` creates the same tables by hand; a test
compares the two so they cannot drift.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, ClassVar

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    Dialect,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
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
    data_path: Mapped[str | None] = mapped_column(String(1000))  # recorded at its first `up`


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
    # The audit key that chains the row (HMAC); NULL: a plain SHA-256 row of an older envplane.
    key_id: Mapped[str | None] = mapped_column(String(32))


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
    # The pid means something only on this kernel boot and in this PID namespace; the
    # start time (clock ticks after boot) tells the holder from a later user of its pid.
    boot_id: Mapped[str | None] = mapped_column(String(64))
    pid_ns: Mapped[str | None] = mapped_column(String(64))
    started: Mapped[int | None] = mapped_column(BigInteger)
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
    """An approval as signed: the gate verifies `signature` over `payload` again each time.

    `actor` is the display name; `principal` and `key_fingerprint` what the signature proved
    when it was made. Rows of an older envplane have no signature and never count."""

    __tablename__ = "approvals"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    app: Mapped[str] = mapped_column(String(200))
    version: Mapped[str] = mapped_column(String(100))
    env: Mapped[str] = mapped_column(String(100))
    actor: Mapped[str] = mapped_column(String(200))
    at: Mapped[datetime]
    principal: Mapped[str | None] = mapped_column(String(200))
    key_fingerprint: Mapped[str | None] = mapped_column(String(100))
    payload: Mapped[str | None] = mapped_column(Text)
    signature: Mapped[str | None] = mapped_column(Text)


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


class WebhookDelivery(Base):
    """A webhook delivery id already taken (GitHub's X-GitHub-Delivery), per app."""

    __tablename__ = "webhook_deliveries"

    app: Mapped[str] = mapped_column(String(200), primary_key=True)
    delivery: Mapped[str] = mapped_column(String(100), primary_key=True)
    received_at: Mapped[datetime] = mapped_column(index=True)


class ProxyRouteRow(Base):
    """The proxy's route of one running instance, as Caddy holds it, and the blue-green
    colour its marker names: what `proxy up` puts back after a restart or a reboot."""

    __tablename__ = "proxy_routes"
    __table_args__ = (UniqueConstraint("app", "instance"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    app: Mapped[str] = mapped_column(String(200))
    instance: Mapped[str] = mapped_column(String(100))
    route: Mapped[dict[str, Any]]  # the instance's Caddy route object
    live: Mapped[str | None] = mapped_column(String(16))  # blue-green: the live colour
    updated_at: Mapped[datetime]


class BackupRow(Base):
    """One backup run of one instance (issue 13); the backup itself is in its store."""

    __tablename__ = "backups"
    __table_args__ = (UniqueConstraint("app", "backup_id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    app: Mapped[str] = mapped_column(String(200))
    env: Mapped[str] = mapped_column(String(100))
    instance: Mapped[str] = mapped_column(String(100))
    backup_id: Mapped[str] = mapped_column(String(64))
    store: Mapped[str] = mapped_column(String(1000))
    status: Mapped[str] = mapped_column(String(32))  # running, failed, verified, corrupt, deleted
    started_at: Mapped[datetime]
    finished_at: Mapped[datetime | None]
    size: Mapped[int | None] = mapped_column(BigInteger)
    release: Mapped[str | None] = mapped_column(String(100))
    actor: Mapped[str] = mapped_column(String(200))
    detail: Mapped[dict[str, Any]]


class DrillRow(Base):
    """One `dr drill`: what was restored where, and the RPO and RTO it measured."""

    __tablename__ = "drills"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    app: Mapped[str] = mapped_column(String(200))
    env: Mapped[str] = mapped_column(String(100))  # the env whose backup was restored
    target: Mapped[str] = mapped_column(String(100))  # the instance it was restored into
    backup_id: Mapped[str | None] = mapped_column(String(64))
    started_at: Mapped[datetime]
    finished_at: Mapped[datetime | None]
    ok: Mapped[bool] = mapped_column(Boolean)
    rpo_seconds: Mapped[float | None] = mapped_column(Float)
    rto_seconds: Mapped[float | None] = mapped_column(Float)
    actor: Mapped[str] = mapped_column(String(200))
    detail: Mapped[dict[str, Any]]


class ServerUserRow(Base):
    """A person who logs in to `envplane serve` (issue 14). Only an scrypt hash of the
    password is kept; `scopes` is space-separated, as the CLI takes them."""

    __tablename__ = "server_users"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    password_hash: Mapped[str] = mapped_column(String(300))
    scopes: Mapped[str] = mapped_column(String(1000))
    created_at: Mapped[datetime]
    seal: Mapped[str | None] = mapped_column(String(64))  # server/seals.py


class ServerTokenRow(Base):
    """An API token of `envplane serve`: only the SHA-256 of the token is kept (it is 256
    random bits, so a fast hash is enough); the token itself is shown once, at creation.
    A token with an `owner` acts for that user: only such a token may approve."""

    __tablename__ = "server_tokens"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    scopes: Mapped[str] = mapped_column(String(1000))
    owner: Mapped[str | None] = mapped_column(String(100))  # the user it acts for, if any
    created_at: Mapped[datetime]
    created_by: Mapped[str] = mapped_column(String(200))
    expires_at: Mapped[datetime | None]
    last_used_at: Mapped[datetime | None]
    revoked_at: Mapped[datetime | None]
    seal: Mapped[str | None] = mapped_column(String(64))  # server/seals.py


class ServerAppRow(Base):
    """An app registered with `envplane serve`: its name and the path of its envplane.yaml."""

    __tablename__ = "server_apps"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    spec_path: Mapped[str] = mapped_column(String(1000))
    added_at: Mapped[datetime]
    added_by: Mapped[str] = mapped_column(String(200))
    seal: Mapped[str | None] = mapped_column(String(64))  # server/seals.py


class SchedulerRunRow(Base):
    """One run of one scheduler job (`envplane serve`, issue 14): a job is a kind of work
    (preview-gc, backup, drill) for one registered app."""

    __tablename__ = "scheduler_runs"
    __table_args__ = (Index("ix_scheduler_runs_job", "job", "app", "started_at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    job: Mapped[str] = mapped_column(String(64))
    app: Mapped[str] = mapped_column(String(200))
    started_at: Mapped[datetime]
    finished_at: Mapped[datetime | None]
    outcome: Mapped[str] = mapped_column(String(32))  # running, ok, failed, interrupted
    message: Mapped[str] = mapped_column(Text)
    next_run_at: Mapped[datetime]
    server: Mapped[str] = mapped_column(String(300))  # who ran it: host and pid
    detail: Mapped[dict[str, Any]]


class ServerJobRow(Base):
    """One job of `envplane serve` (issue 14): a long operation (up, down, preview-up,
    release, ...) started through the API, the dashboard or a webhook, and its outcome."""

    __tablename__ = "server_jobs"
    __table_args__ = (Index("ix_server_jobs_state", "state", "created_at"),)

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    kind: Mapped[str] = mapped_column(String(32))
    app: Mapped[str] = mapped_column(String(200))
    env: Mapped[str | None] = mapped_column(String(100))
    instance: Mapped[str | None] = mapped_column(String(200))
    started_by: Mapped[str] = mapped_column(String(200))  # the principal's name
    server: Mapped[str] = mapped_column(String(300))  # the host whose server ran it
    created_at: Mapped[datetime]
    finished_at: Mapped[datetime | None]
    state: Mapped[str] = mapped_column(String(16))  # running, ok, failed, interrupted, nothing
    result: Mapped[dict[str, Any] | None]
    problem: Mapped[dict[str, Any] | None]


class ServerJobEventRow(Base):
    """One event of a server job, numbered from 1 (the SSE id), secrets already masked."""

    __tablename__ = "server_job_events"

    job_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    seq: Mapped[int] = mapped_column(Integer, primary_key=True)
    data: Mapped[dict[str, Any]]

"""Point-in-time recovery of PostgreSQL that envplane runs: the platform layer's (issue 13).

The platform's PostgreSQL always runs with `archive_mode=on` and hands WAL segments to
pgBackRest once a repository is configured (scripts/images/pgbackrest-archive). `envplane backup`
of an app on that platform, with an `s3://` store, configures it: the repository is
`{store}/pitr/platform-{env}` (one per cluster: every app on the platform shares its WAL),
`archive_timeout` from the spec bounds how old the newest archived change can be (the RPO),
and each backup also takes a base backup (full the first time, then incremental).

`restore --at TIME` restores that cluster's files as of TIME into a throwaway container of
the same image (only the instance's database, `--db-include`; no port, no archiving),
reads the database with pg_dump, and restores it like a backup's dump: into a new
database, swapped in when complete. The live cluster and the other apps on it are never
touched.

pgBackRest speaks S3 over HTTPS only and does not match IP addresses in certificates
(RECIPES.md): the store's endpoint must be https://NAME:PORT, with a certificate for NAME
(a store on this host is reached from the container as host.docker.internal: its
certificate must name that). AWS_CA_BUNDLE, when set, is the CA the archive trusts too.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import urlsplit

from psycopg.conninfo import conninfo_to_dict

from envplane.commands import backup as cmd
from envplane.commands import pgbackrest as pgb
from envplane.dr.config import DrConfig, StoreUrl
from envplane.dr.resources import Reach
from envplane.dr.service import Opened
from envplane.errors import BackendError
from envplane.run import Pipeline, Stage, run
from envplane.secret import Secret

RETENTION_FULL = 2  # base backups the archive keeps (and the WAL to replay from them)


@dataclass(frozen=True)
class Archive:
    """Where one platform cluster archives: its container and the repository settings."""

    container: str
    image: str
    settings: str  # pgbackrest.conf text (holds the S3 secret key: never printed, never in argv)
    secret: Secret
    ca: str  # PEM the archive trusts ("" for the system's)
    admin_password: Secret  # the platform's superuser, for pgBackRest's own connection

    def environ(self) -> dict[str, str]:
        return {**os.environ, "PGPASSWORD": self.admin_password.reveal()}

    @property
    def hidden(self) -> list[Secret]:
        return [self.secret, self.admin_password]

    def stdin(self) -> bytes:
        return f"{self.settings}\n{pgb.CA_MARK}\n{self.ca}".encode()


def settings(store: StoreUrl, endpoint: str, access_key: str, secret_key: Secret, env: str,
             ca: bool, archive_timeout: timedelta) -> str:
    """pgbackrest.conf for the platform of `env` archiving into `store` (pure)."""
    parts = urlsplit(endpoint)
    if parts.scheme != "https" or not parts.hostname:
        raise BackendError(
            f"point-in-time recovery needs the backup store's S3 endpoint over HTTPS, not {endpoint}",
            "pgBackRest speaks S3 over HTTPS only: serve the store with TLS (a certificate naming its "
            "host), or restore from backups alone")
    host = parts.hostname
    if host in ("127.0.0.1", "localhost", "::1"):
        host = "host.docker.internal"  # as the platform's container reaches this host
    path = "/" + "/".join(p for p in (store.prefix, "pitr", f"platform-{env}") if p)
    lines = [
        "[global]",
        "repo1-type=s3",
        f"repo1-path={path}",
        f"repo1-s3-bucket={store.bucket}",
        f"repo1-s3-endpoint={host}",
        f"repo1-storage-port={parts.port or 443}",
        "repo1-s3-region=us-east-1",
        "repo1-s3-uri-style=path",
        f"repo1-s3-key={access_key}",
        f"repo1-s3-key-secret={secret_key.reveal()}",
        f"repo1-retention-full={RETENTION_FULL}",
        *([f"repo1-storage-ca-file={pgb.CA_FILE}"] if ca else []),
        "start-fast=y",
        "log-path=/tmp/pgbackrest",
        "lock-path=/tmp/pgbackrest",
        "log-level-console=warn",
        "log-level-stderr=warn",
        "log-level-file=off",
        f"# archive_timeout={int(archive_timeout.total_seconds())}s",
        f"[{pgb.STANZA}]",
        "pg1-path=/var/lib/postgresql/data",
        "pg1-socket-path=/var/run/postgresql",
    ]
    return "\n".join(lines) + "\n"


def repository_of(text: str) -> tuple[str, ...]:
    """What names a repository in settings text: endpoint, bucket, path (pure)."""
    found = dict(line.split("=", 1) for line in text.splitlines() if "=" in line and not line.startswith("#"))
    return tuple(found.get(k, "") for k in ("repo1-s3-endpoint", "repo1-s3-bucket", "repo1-path"))


def on_platform(reach: Reach) -> bool:
    """Whether the instance's database lives on its env's platform PostgreSQL (the one
    server whose WAL envplane archives: it runs it)."""
    from envplane.platform import layer

    if not reach.has_database() or reach.servers.postgres_url is None:
        return False
    offered = layer.servers_of(reach.target.env.name, reach.environ)
    return offered is not None and offered.get("postgres") == reach.servers.postgres_url


def archive_of(reach: Reach, config: DrConfig) -> Archive | None:
    """The platform cluster the instance's database lives on, with its archive's settings;
    None when it is not a platform's PostgreSQL (envplane does not run that server)."""
    from envplane.platform import layer
    from envplane.target import resolve

    env = reach.target.env.name
    # on_platform checked the URL too; mypy cannot see that
    if not on_platform(reach) or reach.servers.postgres_url is None:
        return None
    if config.store.kind != "s3":
        raise BackendError(
            f"the platform's PostgreSQL of {env} archives WAL to an s3:// backup store, and "
            f"{config.store.text} is not one", "name an s3:// store in backup.store of envplane.yaml")
    endpoint, access, secret = reach.store_servers()
    if not (endpoint and access and secret):
        raise BackendError(f"backup store {config.store.text} needs an S3 server, and none is configured")
    ca_path = reach.environ.get("AWS_CA_BUNDLE") or ""
    ca = Path(ca_path).read_text(encoding="utf-8") if ca_path and Path(ca_path).is_file() else ""
    container = resolve(layer.open_platform(reach.environ), env).service("postgres").container_name
    assert container is not None
    image = run(["docker", "inspect", "--format", "{{.Config.Image}}", container], check=False,
                what="docker inspect").stdout.strip() or "postgres:15"
    password = conninfo_to_dict(reach.servers.postgres_url.reveal()).get("password") or ""
    return Archive(container, image, settings(config.store, endpoint, access, secret, env, bool(ca),
                                              config.archive_timeout), secret, ca, Secret(str(password)))


def ensure_archiving(reach: Reach, config: DrConfig) -> str | None:
    """Configure the platform cluster's archive (first time), check that WAL reaches it, and
    take a base backup. Returns what was done, or None when the database is not on a platform."""
    archive = archive_of(reach, config)
    if archive is None:
        return None
    current = run(pgb.read_settings(archive.container), env=archive.environ(), secrets=archive.hidden,
                  what="read the archive's settings").stdout
    if current.strip() and repository_of(current) != repository_of(archive.settings):
        raise BackendError(
            f"the platform's PostgreSQL ({archive.container}) archives to {'/'.join(repository_of(current))} "
            f"already, not to {config.store.text}",
            "every app on one platform shares its WAL archive: name the same backup.store for them")
    if current != archive.settings:
        run(pgb.write_settings(archive.container), input=archive.stdin().decode(), env=archive.environ(),
            secrets=archive.hidden, what="write the archive's settings")
    _set_archive_timeout(reach, config.archive_timeout)
    for args, what, limit in ((pgb.stanza_create(archive.container), "pgbackrest stanza-create", 300),
                              (pgb.check(archive.container), "pgbackrest check", 300),
                              (pgb.backup(archive.container), "pgbackrest backup", 3600)):
        run(args, env=archive.environ(), secrets=archive.hidden, timeout=limit, what=what)
    return f"WAL archived to {config.store.text} (pitr/platform-{reach.target.env.name})"


def _set_archive_timeout(reach: Reach, timeout: timedelta) -> None:
    import psycopg

    admin = reach.servers.postgres_url
    assert admin is not None
    seconds = max(1, int(timeout.total_seconds()))
    try:
        with psycopg.connect(admin.reveal(), autocommit=True, connect_timeout=10) as conn:
            conn.execute(f"ALTER SYSTEM SET archive_timeout = '{seconds}s'".encode())
            conn.execute(b"SELECT pg_reload_conf()")
    except psycopg.Error as err:
        raise BackendError(f"cannot set archive_timeout on the platform's PostgreSQL: "
                           f"{str(err).strip().splitlines()[0]}") from None


def restorer(source: Opened, at: datetime) -> Callable[[Reach], None]:
    """The database step of `restore --at`: the source's database as of `at`, restored into
    the destination instance's database (beside it, then swapped in)."""
    from envplane.dr import database

    archive = archive_of(source.reach, source.config)
    if archive is None:
        raise BackendError(
            f"env {source.target.env.name} has no WAL archive to restore {at.isoformat()} from",
            "point-in-time recovery covers the platform layer's PostgreSQL (`envplane platform up`) with "
            "an s3:// backup store; restore a backup with --from instead")
    name = source.target.database
    assert name is not None
    moment = at.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f+00")

    def restore(dest: Reach) -> None:
        admin = dest.servers.postgres_url
        target_db = dest.target.database
        if admin is None or target_db is None:
            raise BackendError(f"{dest.target.id} has no PostgreSQL database to restore into")

        def load(temp: str) -> None:
            conninfo, password = dest.database_conninfo(temp)
            stages = [Stage(tuple(pgb.restore_to(archive.image, name, moment))),
                      Stage(tuple(cmd.pg_restore(conninfo)), {"PGPASSWORD": password.reveal()})]
            with Pipeline(stages, feed=True, drain=False, secrets=[*archive.hidden, password],
                          what=f"point-in-time restore to {moment}") as pipe:
                assert pipe.stdin is not None
                pipe.stdin.write(archive.stdin())
                pipe.stdin.close()
                pipe.finish(timeout=3600)

        database.restore(admin, target_db, load)

    return restore

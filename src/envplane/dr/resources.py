"""What a backup or a restore reaches of one instance: its servers, its secret store, its
database connection (as its own role), its bucket client and its data folder.

One place decides each of them, so backup and restore agree on what an instance owns.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

from psycopg.conninfo import conninfo_to_dict, make_conninfo

from envplane.backends.secrets import open_secret_store
from envplane.backends.secrets.base import SecretStore
from envplane.errors import BackendError
from envplane.provision import Servers, store_kind
from envplane.secret import Secret
from envplane.spec.load import Project
from envplane.target import Target

# Secrets envplane generates per instance (provision.py): a restore into another instance
# keeps that instance's own, or one instance's credential would open another's resources.
GENERATED = {"postgres": ("password",), "redis": ("password",), "s3": ("access_key_id", "secret_access_key")}


@dataclass
class Reach:
    project: Project
    target: Target
    environ: Mapping[str, str]

    @property
    def local(self) -> bool:
        return self.target.env.runtime == "process"

    @cached_property
    def servers(self) -> Servers:
        return Servers.for_target(self.target, self.environ)

    @cached_property
    def secrets(self) -> SecretStore:
        return open_secret_store(store_kind(self.target, self.environ), self.project.root, self.environ,
                                 self.target.app)

    def data_path(self) -> Path:
        """The instance's data folder, on this machine. (Issue 9.2 records it at the first
        `up`; until that lands on main, the resolved one.) An instance on another host
        (spec `hosts:`) is refused rather than backed up without its files: the folder
        there is not this machine's."""
        if self.target.engine.remote:
            raise BackendError(
                f"{self.target.app} {self.target.id} runs on {self.target.engine.describe()}: backups and "
                "restores of a data folder on another host are not implemented yet",
                "back it up on that host (envplane with the same spec there), or keep its data in "
                "resources (postgres, s3), which are backed up from here")
        return Path(self.target.data_path)

    def has_database(self) -> bool:
        return bool(self.target.database) and not self.local

    def has_bucket(self) -> bool:
        return bool(self.target.bucket) and not self.local

    def database_exists(self) -> bool:
        from envplane.backends.database.postgres import PostgresDatabases

        if self.servers.postgres_url is None or self.target.database is None:
            return False
        return PostgresDatabases(self.servers.postgres_url).observe(self.target.database).database

    def bucket_exists(self) -> bool:
        from envplane.backends.objects.s3 import S3Store

        s = self.servers
        if not (s.s3_endpoint and s.s3_access_key and s.s3_secret_key and self.target.bucket):
            return False
        return S3Store(s.s3_endpoint, s.s3_access_key, s.s3_secret_key).observe(self.target.bucket).exists

    def database_password(self) -> Secret:
        stored = self.secrets.read(f"{self.target.secrets_prefix}/postgres").get("password")
        if not stored:
            raise BackendError(
                f"{self.target.app} {self.target.id} has no database password in its secret store",
                f"run `envplane provision {self.target.env.name}` first")
        return stored

    def database_conninfo(self, database: str | None = None) -> tuple[str, Secret]:
        """A libpq connection string for the instance's own role (no password in it) and the
        password, which the tools get as PGPASSWORD."""
        from envplane.backends.database.postgres import PostgresDatabases

        name = self.target.database
        assert name is not None
        if self.servers.postgres_url is None:
            raise BackendError(f"env {self.target.env.name} has no PostgreSQL server configured",
                               "set ENVPLANE_POSTGRES_URL or run `envplane platform up ENV`")
        password = self.database_password()
        url = PostgresDatabases(self.servers.postgres_url).url(name, password)
        parts = {k: v for k, v in conninfo_to_dict(url.reveal()).items() if k != "password" and v is not None}
        if database is not None:
            parts["dbname"] = database
        return make_conninfo("", **parts), password

    def s3_client(self) -> Any:
        """The admin S3 client (envplane holds that key; no container ever does)."""
        import boto3  # type: ignore[import-untyped]
        from botocore.config import Config  # type: ignore[import-untyped]

        s = self.servers
        if not (s.s3_endpoint and s.s3_access_key and s.s3_secret_key):
            raise BackendError(f"env {self.target.env.name} has no S3 server configured",
                               "set ENVPLANE_S3_ENDPOINT, ENVPLANE_S3_ACCESS_KEY, ENVPLANE_S3_SECRET_KEY")
        return boto3.client(
            "s3", endpoint_url=s.s3_endpoint, aws_access_key_id=s.s3_access_key,
            aws_secret_access_key=s.s3_secret_key.reveal(), region_name="us-east-1",
            config=Config(connect_timeout=5, read_timeout=120, retries={"max_attempts": 3},
                          s3={"addressing_style": "path"}))

    def store_servers(self) -> tuple[str | None, str | None, Secret | None]:
        """Endpoint and key of an s3:// backup store: the env's S3 server settings."""
        s = self.servers
        return s.s3_endpoint, s.s3_access_key, s.s3_secret_key

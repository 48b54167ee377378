"""Per-instance resources: generated secrets, database, bucket, cache, and the variables
that carry them to each service (seed 000 §6.2: "if the secret is not in Vault, create
the bucket, create the Postgres user, store the secrets, deploy").

Which server backs each resource is decided once, from the environment (`Servers`);
each step looks before it acts, so `up` after a failure converges.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlsplit, urlunsplit

from envplane.backends.database.change import Change
from envplane.backends.secrets.base import SecretStore
from envplane.backends.secrets.generate import new_password
from envplane.errors import BackendError
from envplane.secret import Secret

if TYPE_CHECKING:  # the drivers load only when a resource needs them
    from envplane.backends.cache.redis import RedisUsers
    from envplane.backends.database.postgres import PostgresDatabases
    from envplane.backends.objects.s3 import S3Store
from envplane.target import ServiceTarget, Target

DEFAULT_VARIABLES = {
    "postgres": "ENVPLANE_POSTGRES_URL",
    "s3_endpoint": "ENVPLANE_S3_ENDPOINT",
    "s3_access_key": "ENVPLANE_S3_ACCESS_KEY",
    "s3_secret_key": "ENVPLANE_S3_SECRET_KEY",
    "redis": "ENVPLANE_REDIS_URL",
}


@dataclass(frozen=True)
class Servers:
    """Where the resource servers are: ENVPLANE_POSTGRES_URL, ENVPLANE_S3_*, ENVPLANE_REDIS_URL."""

    postgres_url: Secret | None = None
    s3_endpoint: str | None = None
    s3_access_key: str | None = None
    s3_secret_key: Secret | None = None
    redis_url: Secret | None = None

    @classmethod
    def from_environ(cls, environ: Mapping[str, str], named: Mapping[str, str] | None = None) -> Servers:
        """`named`: the env's `servers:` of the spec (resource -> the variable to read)."""
        chosen = {**DEFAULT_VARIABLES, **(named or {})}

        def value(key: str) -> str | None:
            return environ.get(chosen[key]) or None

        def secret(key: str) -> Secret | None:
            found = value(key)
            return Secret(found) if found else None

        return cls(
            postgres_url=secret("postgres"),
            s3_endpoint=value("s3_endpoint"),
            s3_access_key=value("s3_access_key"),
            s3_secret_key=secret("s3_secret_key"),
            redis_url=secret("redis"),
        )

    @classmethod
    def for_target(cls, target: Target, environ: Mapping[str, str]) -> Servers:
        """The env's servers; what it does not name comes from its platform, when one is up."""
        servers = cls.from_environ(environ, target.env.servers)
        if target.app == "platform" or target.env.runtime == "process":
            return servers
        missing = not servers.postgres_url or not servers.redis_url or not servers.s3_endpoint
        if not missing:
            return servers
        from envplane.platform.layer import servers_of

        offered = servers_of(target.env.name, environ)
        if not offered:
            return servers

        def text(key: str) -> str | None:
            value = offered.get(key)
            return value.reveal() if isinstance(value, Secret) else value

        def secret(key: str) -> Secret | None:
            value = offered.get(key)
            return value if isinstance(value, Secret) else None

        s3_from_platform = servers.s3_endpoint is None
        return cls(
            postgres_url=servers.postgres_url or secret("postgres"),
            s3_endpoint=servers.s3_endpoint or text("s3_endpoint"),
            s3_access_key=servers.s3_access_key if not s3_from_platform else text("s3_access_key"),
            s3_secret_key=servers.s3_secret_key if not s3_from_platform else secret("s3_secret_key"),
            redis_url=servers.redis_url or secret("redis"),
        )




@dataclass
class Provisioner:
    target: Target
    servers: Servers
    secrets: SecretStore
    root: Path
    changes: list[Change] = field(default_factory=list)

    @property
    def local(self) -> bool:
        return self.target.env.runtime == "process"

    # Secrets first: the database role and the Redis user are created with them.

    def password(self, resource: str) -> Secret:
        """The instance's generated password for a resource: reused if stored, else created."""
        path = f"{self.target.secrets_prefix}/{resource}"
        stored = self.secrets.read(path).get("password")
        if stored:
            return stored
        created = new_password()
        self.secrets.write(path, {"password": created})
        self.changes.append(Change("create", f"secret {path}", "generated password"))
        return created

    def database(self) -> None:
        name = self.target.database
        if name is None:
            return
        spec_seed = self._seed()
        if self.local:
            from envplane.backends.database.sqlite import SqliteDatabases

            self.changes += SqliteDatabases(Path(self.target.data_path)).ensure(name, None, spec_seed)
            return
        self.changes += self._postgres().ensure(name, self.password("postgres"), spec_seed)

    def bucket(self) -> None:
        name = self.target.bucket
        if name is None:
            return
        if self.local:
            from envplane.backends.objects.directory import DirectoryStore

            self.changes += DirectoryStore(Path(self.target.data_path) / "buckets").ensure(name)
            return
        self.changes += self._s3().ensure(name)

    def cache(self) -> None:
        prefix = self.target.redis_prefix
        if prefix is None or self.local:
            return
        self.changes += self._redis().ensure(prefix, self.password("redis"))

    def variables(self, service: ServiceTarget) -> dict[str, Secret | str]:
        """What one service gets for the resources it `uses` (names from the spec)."""
        spec = self.target.resources
        out: dict[str, Secret | str] = {}
        t = self.target
        if "postgres" in service.uses and t.database and spec.postgres:
            out[spec.postgres.url_var] = self._database_url()
        if "s3" in service.uses and t.bucket and spec.s3:
            out[spec.s3.bucket_var] = t.bucket
            if self.local:
                out[spec.s3.endpoint_var] = "file://" + str(Path(t.data_path) / "buckets")
            else:
                out[spec.s3.endpoint_var] = for_containers(self.servers.s3_endpoint or "")
                out["S3_ACCESS_KEY_ID"] = self.servers.s3_access_key or ""
                out["S3_SECRET_ACCESS_KEY"] = self.servers.s3_secret_key or Secret("")
        if "redis" in service.uses and t.redis_prefix and spec.redis and not self.local:
            url = self._redis().url(t.redis_prefix, self.password("redis"))
            out[spec.redis.url_var] = Secret(for_containers(url.reveal()))
            out[spec.redis.prefix_var] = t.redis_prefix
        out.update(self.user_secrets(service))
        return out

    def user_secrets(self, service: ServiceTarget) -> dict[str, Secret | str]:
        """The secrets a service names in the spec, from `envplane secrets set`."""
        if not service.secrets:
            return {}
        stored = self.secrets.read(service.secret_path)
        missing = [key for key in service.secrets if key not in stored]
        if missing:
            env = self.target.env.name
            instance = f" --pr {self.target.instance.pr}" if self.target.instance.pr else ""
            raise BackendError(
                f"secret {', '.join(missing)} of service {service.name} is not set for "
                f"{env} {self.target.id}",
                f"envplane secrets set {env} {missing[0]} --service {service.name}{instance}  "
                "(the value is read from stdin)",
            )
        return {key: stored[key] for key in service.secrets}

    def purge(self) -> list[Change]:
        """Drop the database and role, the bucket, the cache user and keys, the secrets."""
        t = self.target
        if t.database:
            if self.local:
                from envplane.backends.database.sqlite import SqliteDatabases

                self.changes += SqliteDatabases(Path(t.data_path)).purge(t.database)
            elif self.servers.postgres_url:
                self.changes += self._postgres().purge(t.database)
        if t.bucket and not self.local and self.servers.s3_endpoint:
            self.changes += self._s3().purge(t.bucket)
        if t.redis_prefix and not self.local and self.servers.redis_url:
            self.changes += self._redis().purge(t.redis_prefix)
        removed = self.secrets.delete_tree(t.secrets_prefix)
        if removed:
            self.changes.append(Change("delete", f"secrets {t.secrets_prefix}/", f"{removed} path(s)"))
        return self.changes

    def _database_url(self) -> Secret:
        name = self.target.database
        assert name is not None
        if self.local:
            return Secret(f"sqlite:///{Path(self.target.data_path) / (name + '.db')}")
        url = self._postgres().url(name, self.password("postgres"))
        return Secret(for_containers(url.reveal()))

    def _seed(self) -> str | None:
        spec = self.target.resources.postgres
        if spec is None or spec.seed is None:
            return None
        return (self.root / spec.seed).read_text(encoding="utf-8")

    def _postgres(self) -> PostgresDatabases:
        from envplane.backends.database.postgres import PostgresDatabases

        if self.servers.postgres_url is None:
            raise _missing("PostgreSQL", "ENVPLANE_POSTGRES_URL", self.target)
        return PostgresDatabases(self.servers.postgres_url)

    def _s3(self) -> S3Store:
        from envplane.backends.objects.s3 import S3Store

        s = self.servers
        if not (s.s3_endpoint and s.s3_access_key and s.s3_secret_key):
            raise _missing("an S3 server", "ENVPLANE_S3_ENDPOINT, ENVPLANE_S3_ACCESS_KEY and "
                           "ENVPLANE_S3_SECRET_KEY", self.target)
        return S3Store(s.s3_endpoint, s.s3_access_key, s.s3_secret_key)

    def _redis(self) -> RedisUsers:
        from envplane.backends.cache.redis import RedisUsers

        if self.servers.redis_url is None:
            raise _missing("Redis", "ENVPLANE_REDIS_URL", self.target)
        return RedisUsers(self.servers.redis_url)


def observe(target: Target, servers: Servers, root: Path,
            environ: Mapping[str, str]) -> tuple[frozenset[str], list[str]]:
    """What of the instance's resources exists already, as plan.Observed keys, read-only.

    A server that does not answer is reported, not raised: plan still shows the steps.
    Nothing is created here, not even the file store's key (read only if it exists).
    """
    from envplane.backends.secrets import open_secret_store

    found: set[str] = set()
    notes: list[str] = []
    local = target.env.runtime == "process"

    def look(what: str, probe: Callable[[], frozenset[str]]) -> None:
        try:
            found.update(probe())
        except (BackendError, OSError) as exc:
            notes.append(f"could not look at {what}: {getattr(exc, 'message', exc)}")

    if target.database:
        db = target.database
        if local:
            from envplane.backends.database.sqlite import SqliteDatabases

            look("the SQLite file", lambda: SqliteDatabases(Path(target.data_path)).observe(db).keys())
        elif servers.postgres_url:
            from envplane.backends.database.postgres import PostgresDatabases

            admin = servers.postgres_url

            def database() -> frozenset[str]:
                keys = PostgresDatabases(admin).observe(db).keys()
                both = {f"role:{db}", f"database:{db}"} <= keys
                return keys if both else keys - {f"database:{db}"}

            look("PostgreSQL", database)
    if target.bucket:
        bucket = target.bucket
        if local:
            from envplane.backends.objects.directory import DirectoryStore

            look("the bucket folder",
                 lambda: DirectoryStore(Path(target.data_path) / "buckets").observe(bucket).keys())
        elif servers.s3_endpoint and servers.s3_access_key and servers.s3_secret_key:
            from envplane.backends.objects.s3 import S3Store

            store = S3Store(servers.s3_endpoint, servers.s3_access_key, servers.s3_secret_key)
            look("S3", lambda: store.observe(bucket).keys())
    if target.redis_prefix and not local and servers.redis_url:
        from envplane.backends.cache.redis import RedisUsers

        prefix, url = target.redis_prefix, servers.redis_url
        look("Redis", lambda: RedisUsers(url).observe(prefix).keys_observed())
    kind = store_kind(target, environ) or "file"
    if kind != "file" or (root / ".envplane" / "secrets.enc").exists():
        def passwords() -> frozenset[str]:
            secrets = open_secret_store(store_kind(target, environ), root, environ)
            wanted = [r for r, on in (("postgres", target.database), ("redis", target.redis_prefix)) if on]
            have = all(secrets.read(f"{target.secrets_prefix}/{r}").get("password") for r in wanted)
            return frozenset({f"secrets:{target.secrets_prefix}"} if wanted and have else set())

        look("the secret store", passwords)
    return frozenset(found), notes


def _missing(what: str, variables: str, target: Target) -> BackendError:
    named = ", ".join(target.env.servers.values())
    return BackendError(
        f"env {target.env.name} needs {what}, and none is configured",
        f"set {named or variables} (an admin connection envplane provisions with), "
        f"or run `envplane platform up {target.env.name}`",
    )


def for_containers(url: str) -> str:
    """A server on this host, as a container reaches it: host.docker.internal (see render)."""
    parts = urlsplit(url)
    if parts.hostname not in ("127.0.0.1", "localhost"):
        return url
    netloc = parts.netloc.rsplit("@", 1)
    host_port = netloc[-1].replace(parts.hostname, "host.docker.internal", 1)
    return urlunsplit(parts._replace(netloc="@".join([*netloc[:-1], host_port])))


def store_kind(target: Target, environ: Mapping[str, str]) -> str | None:
    """ENVPLANE_SECRETS, else the spec's secret_store, else None (the file store)."""
    return environ.get("ENVPLANE_SECRETS") or target.secret_store


def write_env_file(path: Path, values: Mapping[str, Secret | str]) -> None:
    """A Compose env_file only the owner can read; values never reach a command line."""
    lines = [f"{key}={value.reveal() if isinstance(value, Secret) else value}\n"
             for key, value in sorted(values.items())]
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.writelines(lines)
    os.chmod(path, 0o600)

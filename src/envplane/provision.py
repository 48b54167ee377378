"""Per-instance resources: generated secrets, database, bucket, cache, and the variables
that carry them to each service (seed 000 §6.2: "if the secret is not in Vault, create
the bucket, create the Postgres user, store the secrets, deploy").

Which server backs each resource is decided once, from the environment (`Servers`);
each step looks before it acts, so `up` after a failure converges.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlsplit, urlunsplit

from envplane.backends.database.change import Change
from envplane.backends.secrets.base import SecretStore
from envplane.backends.secrets.generate import new_password
from envplane.compose.dotenv import NotCarried, env_file_text
from envplane.errors import BackendError, SecretUnset, UsageError
from envplane.private import write_private
from envplane.secret import Secret

if TYPE_CHECKING:  # the drivers load only when a resource needs them
    from envplane.backends.cache.redis import RedisUsers
    from envplane.backends.database.postgres import PostgresDatabases
    from envplane.backends.objects.s3 import S3Store
    from envplane.backends.objects.s3_identity import S3Identities, S3Key
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
    # A key the user made for this env's bucket (no default variable: the spec names it).
    s3_app_access_key: str | None = None
    s3_app_secret_key: Secret | None = None

    @classmethod
    def from_environ(cls, environ: Mapping[str, str], named: Mapping[str, str] | None = None) -> Servers:
        """`named`: the env's `servers:` of the spec (resource -> the variable to read)."""
        chosen = {**DEFAULT_VARIABLES, **(named or {})}

        def value(key: str) -> str | None:
            return (environ.get(chosen[key]) or None) if key in chosen else None

        def secret(key: str) -> Secret | None:
            found = value(key)
            return Secret(found) if found else None

        return cls(
            postgres_url=secret("postgres"),
            s3_endpoint=value("s3_endpoint"),
            s3_access_key=value("s3_access_key"),
            s3_secret_key=secret("s3_secret_key"),
            redis_url=secret("redis"),
            s3_app_access_key=value("s3_app_access_key"),
            s3_app_secret_key=secret("s3_app_secret_key"),
        )

    @classmethod
    def for_target(cls, target: Target, environ: Mapping[str, str]) -> Servers:
        """The env's servers; what it does not name comes from its platform, when one is up."""
        # The host's servers (hosts.<group>.servers), then the env's own names over them.
        servers = cls.from_environ(environ, {**target.engine.servers, **target.env.servers})
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
        return replace(
            servers,
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

    def s3_key(self) -> None:
        """The instance's own S3 key, limited to its bucket; the admin key stays here."""
        from envplane.backends.objects.s3_identity import S3Key

        name = self.target.bucket
        if name is None or self.local:
            return
        if self._given_s3_key() is not None:
            self.changes.append(Change("noop", f"S3 key of {name}", "given by the env's servers: "
                                       "s3_app_access_key (envplane makes none)"))
            return
        path = f"{self.target.secrets_prefix}/s3"
        stored = S3Key.from_secrets(self.secrets.read(path))
        changes, key = self._s3_identities().ensure(name, stored)
        if key != stored:
            self.secrets.write(path, key.as_secrets())
            self.changes.append(Change("create", f"secret {path}", "the instance's S3 key"))
        self.changes += changes

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
                key = self._stored_s3_key()
                out[spec.s3.endpoint_var] = for_containers(self.servers.s3_endpoint or "", self.target)
                out["S3_ACCESS_KEY_ID"] = key.access_key_id
                out["S3_SECRET_ACCESS_KEY"] = key.secret_access_key
        if "redis" in service.uses and t.redis_prefix and spec.redis and not self.local:
            url = self._redis().url(t.redis_prefix, self.password("redis"))
            out[spec.redis.url_var] = Secret(for_containers(url.reveal(), self.target))
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
            raise _unset(self.target, service, missing)
        return {key: stored[key] for key in service.secrets}

    def purge(self) -> list[str]:
        """Drop the database and role, the bucket, the cache user and keys, then the secrets.

        A resource whose server is not configured or does not answer is kept and named in
        the list returned ("redis: ..."); the secrets then stay too, so that a later purge
        can still drop it (lifecycle marks the instance `partial`).
        """
        t = self.target
        failed: list[str] = []

        def drop(resource: str, step: Callable[[], list[Change]]) -> None:
            try:
                self.changes += step()
            except BackendError as exc:
                failed.append(f"{resource}: {exc.message}")

        if t.database:
            database = t.database
            if self.local:
                from envplane.backends.database.sqlite import SqliteDatabases

                self.changes += SqliteDatabases(Path(t.data_path)).purge(database)
            else:
                drop("postgres", lambda: self._postgres().purge(database))
        if t.bucket and not self.local:
            bucket = t.bucket
            drop("s3", lambda: self._s3().purge(bucket))
            if self._given_s3_key() is None:  # a given key is the user's to revoke
                drop("s3 key", lambda: self._s3_identities().purge(bucket))
        if t.redis_prefix and not self.local:
            prefix = t.redis_prefix
            drop("redis", lambda: self._redis().purge(prefix))
        if failed:
            return failed
        removed = self.secrets.delete_tree(t.secrets_prefix)
        if removed:
            self.changes.append(Change("delete", f"secrets {t.secrets_prefix}/", f"{removed} path(s)"))
        return []

    def _database_url(self) -> Secret:
        name = self.target.database
        assert name is not None
        if self.local:
            return Secret(f"sqlite:///{Path(self.target.data_path) / (name + '.db')}")
        url = self._postgres().url(name, self.password("postgres"))
        return Secret(for_containers(url.reveal(), self.target))

    def _seed(self) -> str | None:
        spec = self.target.resources.postgres
        if spec is None or spec.seed is None:
            return None
        return (self.root / spec.seed).read_text(encoding="utf-8")

    def _postgres(self) -> PostgresDatabases:
        return postgres_server(self.target, self.servers)

    def _s3(self) -> S3Store:
        return s3_server(self.target, self.servers)

    def _s3_identities(self) -> S3Identities:
        return s3_identities(self.target, self.servers)

    def _given_s3_key(self) -> S3Key | None:
        return given_s3_key(self.target, self.servers)

    def _stored_s3_key(self) -> S3Key:
        from envplane.backends.objects.s3_identity import S3Key

        given = self._given_s3_key()
        if given is not None:
            return given
        key = S3Key.from_secrets(self.secrets.read(f"{self.target.secrets_prefix}/s3"))
        if key is None:
            raise BackendError(
                f"{self.target.app} {self.target.id} has no S3 key of its own yet",
                f"run `envplane provision {self.target.env.name}` (or `up`): it makes one, limited to "
                f"bucket {self.target.bucket}",
            )
        return key

    def _redis(self) -> RedisUsers:
        return redis_server(self.target, self.servers)


# The servers an instance's resources live on, as clients holding the admin credentials.
# Provisioner makes and deletes with them; the pre-flight only reads.

def postgres_server(target: Target, servers: Servers) -> PostgresDatabases:
    from envplane.backends.database.postgres import PostgresDatabases

    if servers.postgres_url is None:
        raise _missing("PostgreSQL", "ENVPLANE_POSTGRES_URL", target)
    return PostgresDatabases(servers.postgres_url)


def s3_server(target: Target, servers: Servers) -> S3Store:
    from envplane.backends.objects.s3 import S3Store

    s = servers
    if not (s.s3_endpoint and s.s3_access_key and s.s3_secret_key):
        raise _missing("an S3 server", "ENVPLANE_S3_ENDPOINT, ENVPLANE_S3_ACCESS_KEY and "
                       "ENVPLANE_S3_SECRET_KEY", target)
    key = (s.s3_endpoint, s.s3_access_key, s.s3_secret_key.reveal())
    if key not in _S3_STORES:
        _S3_STORES[key] = S3Store(s.s3_endpoint, s.s3_access_key, s.s3_secret_key)
    return _S3_STORES[key]


def s3_identities(target: Target, servers: Servers) -> S3Identities:
    from envplane.backends.objects.s3_identity import S3Identities

    s = s3_server(target, servers)
    assert servers.s3_secret_key is not None  # s3_server() checked every part
    key = (s.endpoint, s.access_key, servers.s3_secret_key.reveal())
    if key not in _S3_IDENTITIES:
        _S3_IDENTITIES[key] = S3Identities(s.endpoint, s.access_key, servers.s3_secret_key)
    return _S3_IDENTITIES[key]


# (endpoint, access key, secret key) -> its client. A boto3 client costs ~65 ms of CPU to
# make, and an `up` asks for the same server in its pre-flight and in several steps (#11);
# boto3's clients are thread-safe and reconnect by themselves: one per server and key serves.
_S3_STORES: dict[tuple[str, str, str], S3Store] = {}
_S3_IDENTITIES: dict[tuple[str, str, str], S3Identities] = {}


def given_s3_key(target: Target, servers: Servers) -> S3Key | None:
    """The key the env's spec names (s3_app_access_key/s3_app_secret_key), if it does.

    It serves one instance only, and is never the admin key."""
    from envplane.backends.objects.s3_identity import S3Key

    s, t = servers, target
    if not (s.s3_app_access_key or s.s3_app_secret_key):
        return None
    if not (s.s3_app_access_key and s.s3_app_secret_key):
        raise UsageError(f"env {t.env.name} names only half of its S3 key",
                         f"set both servers.s3_app_access_key and s3_app_secret_key of {t.env.name}, "
                         "and both variables")
    if t.env.instances != "one":
        raise UsageError(
            f"env {t.env.name} has one instance per {t.env.instances.split('-')[-1]}: one given S3 key "
            "would reach every instance's bucket",
            f"drop servers.s3_app_* of {t.env.name} and use an S3 server with an IAM API (SeaweedFS)",
        )
    if s.s3_app_access_key == s.s3_access_key:
        raise UsageError(f"env {t.env.name} gives its containers the admin S3 key",
                         "make a key limited to the env's bucket for servers.s3_app_access_key")
    return S3Key(s.s3_app_access_key, s.s3_app_secret_key)


def redis_server(target: Target, servers: Servers) -> RedisUsers:
    from envplane.backends.cache.redis import RedisUsers

    if servers.redis_url is None:
        raise _missing("Redis", "ENVPLANE_REDIS_URL", target)
    return RedisUsers(servers.redis_url)


def check_servers(target: Target, servers: Servers) -> list[str]:
    """Pre-flight: each server the instance's resources live on answers a read made with the
    admin credentials (its own database, bucket, S3 user and Redis user are looked at, not
    made). Returns the servers that answered; raises naming the first that did not."""
    if target.env.runtime == "process":
        return []
    answered = []
    if target.database:
        postgres_server(target, servers).observe(target.database)
        answered.append("PostgreSQL")
    if target.bucket:
        s3_server(target, servers).observe(target.bucket)
        if given_s3_key(target, servers) is None:
            s3_identities(target, servers).observe(target.bucket)
        answered.append("S3")
    if target.redis_prefix:
        redis_server(target, servers).observe(target.redis_prefix)
        answered.append("Redis")
    return answered


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
    has_store = _store_exists(target, root, environ)

    def read_stored(path: str) -> dict[str, Secret]:
        if not has_store:
            return {}
        return open_secret_store(store_kind(target, environ), root, environ, target.app).read(path)

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
            from envplane.backends.objects.s3_identity import S3Identities, S3Key

            store = S3Store(servers.s3_endpoint, servers.s3_access_key, servers.s3_secret_key)
            look("S3", lambda: store.observe(bucket).keys())
            users = S3Identities(servers.s3_endpoint, servers.s3_access_key, servers.s3_secret_key)

            def identity() -> frozenset[str]:
                if servers.s3_app_access_key:  # given by the spec: nothing to make
                    return frozenset({f"s3key:{bucket}"})
                stored = S3Key.from_secrets(read_stored(f"{target.secrets_prefix}/s3"))
                return users.observe(bucket).keys_observed(stored.access_key_id if stored else None)

            look("the S3 users", identity)
    if target.redis_prefix and not local and servers.redis_url:
        from envplane.backends.cache.redis import RedisUsers

        prefix, url = target.redis_prefix, servers.redis_url
        look("Redis", lambda: RedisUsers(url).observe(prefix).keys_observed())
    if has_store:
        def passwords() -> frozenset[str]:
            wanted = [r for r, on in (("postgres", target.database), ("redis", target.redis_prefix)) if on]
            have = all(read_stored(f"{target.secrets_prefix}/{r}").get("password") for r in wanted)
            return frozenset({f"secrets:{target.secrets_prefix}"} if wanted and have else set())

        look("the secret store", passwords)
    return frozenset(found), notes


def check_user_secrets(target: Target, root: Path, environ: Mapping[str, str]) -> list[str]:
    """Pre-flight: every secret the services name (`secrets:`) is set. The store is read,
    never created. Returns the names found; raises naming the first service that lacks one."""
    from envplane.backends.secrets import open_secret_store

    needing = [s for s in target.services if s.secrets]
    if not needing:
        return []
    store = open_secret_store(store_kind(target, environ), root, environ, target.app) \
        if _store_exists(target, root, environ) else None
    for service in needing:
        stored = store.read(service.secret_path) if store is not None else {}
        missing = [key for key in service.secrets if key not in stored]
        if missing:
            raise _unset(target, service, missing)
    return [key for service in needing for key in service.secrets]


def _store_exists(target: Target, root: Path, environ: Mapping[str, str]) -> bool:
    """Whether there is a store to read (opening the file store would make its key)."""
    kind = store_kind(target, environ) or "file"
    return kind != "file" or (root / ".envplane" / "secrets.enc").exists()


def _unset(target: Target, service: ServiceTarget, missing: list[str]) -> SecretUnset:
    env = target.env.name
    instance = f" --pr {target.instance.pr}" if target.instance.pr else ""
    return SecretUnset(
        f"secret {', '.join(missing)} of service {service.name} is not set for {env} {target.id}",
        f"envplane secrets set {env} {missing[0]} --service {service.name}{instance}  "
        "(the value is read from stdin)",
    )


def _missing(what: str, variables: str, target: Target) -> BackendError:
    named = ", ".join(target.env.servers.values())
    return BackendError(
        f"env {target.env.name} needs {what}, and none is configured",
        f"set {named or variables} (an admin connection envplane provisions with), "
        f"or run `envplane platform up {target.env.name}`",
    )


def for_containers(url: str, target: Target | None = None) -> str:
    """A server on this host, as a container reaches it: host.docker.internal (see render).

    Containers on a remote host (spec `hosts:`) cannot reach this machine's loopback: a
    server there must be named at an address that host reaches (hosts.<group>.servers)."""
    parts = urlsplit(url)
    if parts.hostname not in ("127.0.0.1", "localhost", "::1"):
        return url
    if target is not None and target.engine.remote:
        raise BackendError(
            f"env {target.env.name} runs on {target.engine.describe()}, whose containers cannot reach "
            f"a server at {parts.hostname} of this machine",
            f"name servers the host reaches in hosts.{target.engine.name}.servers of envplane.yaml "
            "(variables holding their URLs), e.g. {postgres: A_POSTGRES_URL}")
    netloc = parts.netloc.rsplit("@", 1)
    host_port = netloc[-1].replace(parts.hostname, "host.docker.internal", 1)
    return urlunsplit(parts._replace(netloc="@".join([*netloc[:-1], host_port])))


def store_kind(target: Target, environ: Mapping[str, str]) -> str | None:
    """ENVPLANE_SECRETS, else the spec's secret_store, else None (the file store)."""
    return environ.get("ENVPLANE_SECRETS") or target.secret_store


def write_env_file(path: Path, values: Mapping[str, Secret | str]) -> None:
    """A Compose env_file only the owner can read (0600, in the private .envplane folder).

    Values never reach a command line, and each arrives in the container exactly as given
    (compose.dotenv.env_file_text); one that cannot is refused by its variable's name,
    before anything is written.
    """
    plain = {key: value.reveal() if isinstance(value, Secret) else value for key, value in values.items()}
    try:
        text = env_file_text(plain)
    except NotCarried as exc:
        raise UsageError(f"{exc}; service {path.stem} cannot be given it", exc.hint) from None
    write_private(path, text.encode("utf-8"))

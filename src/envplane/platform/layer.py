"""The platform app: where it lives, its generated admin secrets, and the servers it offers.

It is an ordinary envplane app (spec in this package, copied to $ENVPLANE_HOME/platform so
its state and secrets live there); only `servers_of` is special: it tells provisioning
where an env's platform answers when the environment names no server.

Its admin ports listen on one private address (`platform_ip`): the Docker bridge's
gateway, which this host and its containers reach (as host.docker.internal) and other
machines do not.
"""

from __future__ import annotations

import ipaddress
import json
import shutil
import time
from collections.abc import Callable, Mapping
from pathlib import Path

from envplane.backends.secrets import KIND_ENV, open_secret_store
from envplane.backends.secrets.base import SecretStore
from envplane.backends.secrets.generate import new_password
from envplane.commands import docker as docker_cmd
from envplane.errors import BackendError, UsageError
from envplane.run import run
from envplane.secret import Secret
from envplane.spec.load import Project, load_project
from envplane.target import Target, resolve

SPEC_FILES = ("envplane.yaml", "compose.yaml")
HERE = Path(__file__).parent
PLATFORM_IP = "ENVPLANE_PLATFORM_IP"  # compose.yaml publishes the admin ports on it


def root(environ: Mapping[str, str]) -> Path:
    home = Path(environ.get("ENVPLANE_HOME") or Path.home() / ".envplane")
    return home / "platform"


def open_platform(environ: Mapping[str, str]) -> Project:
    """The platform project, its spec files refreshed from this envplane's copy."""
    folder = root(environ)
    folder.mkdir(parents=True, exist_ok=True)
    for name in SPEC_FILES:
        if not (folder / name).exists() or (folder / name).read_bytes() != (HERE / name).read_bytes():
            shutil.copyfile(HERE / name, folder / name)
    # Its admin secrets sit in its own file store whatever the process uses: the project
    # carries that (and every Applier of it reads it), so no one sets it process-wide.
    return load_project(folder / "envplane.yaml",
                        {**environ, PLATFORM_IP: platform_ip(environ), KIND_ENV: "file"})


def platform_ip(environ: Mapping[str, str]) -> str:
    """ENVPLANE_PLATFORM_IP, else the Docker bridge's gateway, else loopback."""
    given = environ.get(PLATFORM_IP)
    if given:
        return check_ip(given)
    found = run(docker_cmd.bridge_config(), check=False, timeout=15, what="read Docker's bridge network")
    return (bridge_gateway(found.stdout) if found.returncode == 0 else None) or "127.0.0.1"


def check_ip(text: str) -> str:
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        raise UsageError(f"{PLATFORM_IP}={text!r} is not an IP address",
                         "use this host's private address, e.g. 127.0.0.1 or 172.17.0.1") from None
    if address.is_unspecified:
        raise UsageError(f"{PLATFORM_IP}={text} would publish the platform's admin ports on every network",
                         "use a private address: 127.0.0.1, or the Docker bridge's (172.17.0.1)")
    return text


def bridge_gateway(config: str) -> str | None:
    """The IPv4 gateway of `docker network inspect bridge`'s IPAM config (JSON): the one
    given, else the first address of the subnet, which Docker takes when none is given."""
    try:
        entries = json.loads(config or "null") or []
    except json.JSONDecodeError:
        return None
    for entry in entries if isinstance(entries, list) else []:
        gateway, subnet = entry.get("Gateway"), entry.get("Subnet")
        if gateway and ipaddress.ip_address(gateway).version == 4:
            return str(gateway)
        if subnet and ipaddress.ip_network(subnet, strict=False).version == 4:
            return str(next(ipaddress.ip_network(subnet, strict=False).hosts()))
    return None


def store(project: Project, environ: Mapping[str, str]) -> SecretStore:
    # The platform's own secrets always sit in its embedded store, under its own home.
    return open_secret_store("file", project.root, {**environ, "ENVPLANE_SECRETS": "file"}, project.app)


def ensure_secrets(target: Target, secrets: SecretStore) -> list[str]:
    """Generate the admin passwords the platform's services need; keep existing ones."""
    made = []
    for service in target.services:
        stored = secrets.read(service.secret_path)
        missing = {key: new_password() for key in service.secrets if key not in stored}
        if missing:
            secrets.write(service.secret_path, missing)
            made += [f"{service.secret_path}:{key}" for key in missing]
    return made


def servers_of(env: str, environ: Mapping[str, str]) -> dict[str, Secret | str] | None:
    """Admin connections of the env's platform, if one was brought up here; else None."""
    folder = root(environ)
    if not (folder / ".envplane" / "state.db").exists() and not environ.get("ENVPLANE_STATE_URL"):
        return None
    # Its ports and secret paths only; a DATA_PATH in the shell is the app's, not the platform's.
    project = open_platform({k: v for k, v in environ.items() if k != "DATA_PATH"})
    if env not in project.envs or project.envs[env].instances != "one":
        return None
    target = resolve(project, env)
    secrets = store(project, environ)
    values = {s.name: secrets.read(s.secret_path) for s in target.services}
    if not all(values.values()):
        return None

    def address(service: str) -> str | None:
        """host:port where the service's admin port is published (its private address)."""
        found = next((p for p in target.service(service).ports if p.published), None)
        return f"{found.host_ip or '127.0.0.1'}:{found.published}" if found else None

    pg, redis, s3 = address("postgres"), address("redis"), address("s3")
    out: dict[str, Secret | str] = {}
    if pg and "POSTGRES_PASSWORD" in values["postgres"]:
        password = values["postgres"]["POSTGRES_PASSWORD"].reveal()
        out["postgres"] = Secret(f"postgresql://postgres:{password}@{pg}/postgres")
    if redis and "REDIS_PASSWORD" in values["redis"]:
        out["redis"] = Secret(f"redis://default:{values['redis']['REDIS_PASSWORD'].reveal()}@{redis}/0")
    if s3 and "S3_ACCESS_KEY" in values["s3"]:
        out["s3_endpoint"] = f"http://{s3}"
        out["s3_access_key"] = values["s3"]["S3_ACCESS_KEY"].reveal()
        out["s3_secret_key"] = values["s3"]["S3_SECRET_KEY"]
    return out


def with_platform(target: Target) -> Target:
    """The target, when its env can have a platform (it runs containers); else a usage error."""
    if target.env.runtime != "compose":
        env = target.env.name
        raise UsageError(
            f"env {env} runs services as local processes: it has no platform",
            f"its apps use a SQLite file and a folder; run `envplane up {env}` without one",
        )
    return target


def check_before_up(project: Project, env: str) -> Target:
    """Everything `platform up` must know before it changes anything (no secret is made
    before a refusal): the env runs containers, its names, ports and domain clash with no
    other env's platform, the engine answers and its host ports are free."""
    from envplane import actions
    from envplane.apply import Applier

    target = with_platform(actions.resolve_checked(project, env))
    applier = Applier(project)
    applier.runtime.check()
    applier.check_ports(target)
    return target


Probe = tuple[str, Callable[[], object]]


def wait_ready(env: str, environ: Mapping[str, str], timeout: float) -> list[str]:
    """Return once each server answers a request that needs its admin credentials:
    a SQL query, an authenticated Redis command, and S3 and IAM calls signed with the
    admin key. A port that accepts connections is not enough (SeaweedFS listens before
    it knows its keys)."""
    offered = servers_of(env, environ)
    if not offered:
        raise BackendError(f"platform {env} has no admin secrets", f"run `envplane platform up {env}`")
    pending = list(_probes(offered))
    deadline = time.monotonic() + timeout
    answered: list[str] = []
    while pending:
        name, probe = pending[0]
        try:
            probe()
        except BackendError as exc:
            if time.monotonic() >= deadline:
                raise BackendError(
                    f"platform {env}: {name} did not answer within {timeout:.0f} s: {exc.message}",
                    f"see `docker logs` of the platform-*-{env} containers") from None
            time.sleep(0.5)
            continue
        answered.append(name)
        pending.pop(0)
    return answered


def _probes(offered: Mapping[str, Secret | str]) -> list[Probe]:
    from envplane.backends.cache.redis import RedisUsers
    from envplane.backends.database.postgres import PostgresDatabases
    from envplane.backends.objects.s3 import S3Store
    from envplane.backends.objects.s3_identity import S3Identities

    def secret(key: str) -> Secret:
        value = offered[key]
        return value if isinstance(value, Secret) else Secret(value)

    endpoint, key = str(offered["s3_endpoint"]), str(offered["s3_access_key"])
    s3_secret = secret("s3_secret_key")
    probe = "envplane-probe"
    return [
        ("PostgreSQL (a SQL query)", lambda: PostgresDatabases(secret("postgres")).observe("platform_probe")),
        ("Redis (an ACL read, with auth)", lambda: RedisUsers(secret("redis")).observe("platform:probe:")),
        ("S3 (HeadBucket, signed)", lambda: S3Store(endpoint, key, s3_secret).observe(probe)),
        ("S3 IAM (GetUser, signed)", lambda: S3Identities(endpoint, key, s3_secret).observe(probe)),
    ]

"""The envplane.yaml schema: what Compose does not say about an app.

Every model forbids unknown keys (a typo is an error with its line) and is frozen:
resolving an environment builds new objects, it never edits these.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictBool, field_validator, model_validator

from envplane.names import DATA_PATH_FIELDS, template_problem

NAME = re.compile(r"^[a-z][a-z0-9-]*[a-z0-9]$")
ENV_NAME = re.compile(r"^[a-z][a-z0-9-]*$")
DOMAIN = re.compile(
    r"^(?=.{1,253}$)([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)*$"
)
VAR_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
NAME_RULE = "2-40 characters of a-z, 0-9 and '-', starting with a letter"


def valid_name(value: str) -> bool:
    """An app name or prefix: it names containers, databases, buckets and domains."""
    return bool(NAME.match(value)) and len(value) <= 40

Port = Annotated[int, Field(ge=1, le=65535)]
Runtime = Literal["process", "compose", "swarm", "kubernetes", "dokploy"]
InstanceKind = Literal["one", "per-pr", "per-run"]
PortMode = Literal["offset", "block", "ephemeral"]
VolumeMode = Literal["named", "bind"]
# s3_app_*: a key the user made for this env's bucket (AWS, R2, MinIO: servers whose IAM
# envplane does not drive); containers get it instead of a key envplane makes.
ServerKey = Literal["postgres", "s3_endpoint", "s3_access_key", "s3_secret_key", "redis",
                    "s3_app_access_key", "s3_app_secret_key"]
SecretStoreKind = Literal["file", "vault", "sops"]
Strategy = Literal["recreate", "blue-green"]
# What routes an env's domain to its public services (README: Routing): envplane's Caddy,
# a Traefik of the user's (Dokploy's) by the rendered labels, or nothing (published ports).
Routing = Literal["caddy", "traefik", "none"]
Severity = Literal["low", "medium", "high", "critical"]
HookName = Literal["pre_deploy", "migrate", "post_deploy"]


class Model(BaseModel):
    # defer_build: each model's validator is built when first used, not when this module is
    # imported — a command that loads a spec builds the ones it needs once, and one that loads
    # none (version, status of Compose envs) builds none. plan staging: 1.0-1.07 → 0.9 s CPU.
    model_config = ConfigDict(extra="forbid", frozen=True, strict=False, defer_build=True)


class PublicRoute(Model):
    """The container port a proxy routes the env's domain to, and the path it serves."""

    port: Port
    path: str = "/"

    @field_validator("path")
    @classmethod
    def _path_starts_with_slash(cls, value: str) -> str:
        if not value.startswith("/"):
            raise ValueError("must start with '/'")
        return value


# A Swarm placement constraint as `docker service create --constraint` takes it.
SWARM_CONSTRAINT = re.compile(
    r"^(node\.(id|hostname|role|platform\.os|platform\.arch|labels\.[A-Za-z0-9_.-]+)"
    r"|engine\.labels\.[A-Za-z0-9_.-]+)\s*(==|!=)\s*[A-Za-z0-9_.:/-]+$")


class SwarmServiceSpec(Model):
    """How a service runs on `runtime: swarm` (README: Swarm). The Compose file's own
    `deploy:` is read too; what is given here wins."""

    replicas: int | None = Field(default=None, ge=1, le=100)
    constraints: list[str] = Field(default_factory=list)  # node.labels.zone == a, node.role == worker

    @field_validator("constraints", mode="before")
    @classmethod
    def _one_or_many(cls, value: Any) -> Any:
        return [value] if isinstance(value, str) else value

    @field_validator("constraints")
    @classmethod
    def _constraint_shape(cls, value: list[str]) -> list[str]:
        for item in value:
            if not SWARM_CONSTRAINT.match(item):
                raise ValueError(f"{item[:60]!r} is not a Swarm constraint, e.g. `node.labels.zone == a` "
                                 "or `node.role != manager`")
        return value


class ServiceSpec(Model):
    public: PublicRoute | None = None
    health: str | None = None
    dev: str | None = None
    dev_cwd: str | None = None
    env: dict[str, str] = Field(default_factory=dict)
    secrets: list[str] = Field(default_factory=list)
    uses: list[Literal["postgres", "s3", "redis"]] = Field(default_factory=list)
    # Whether the service holds data: true/false overrides the guess (release/stateful.py).
    # A stateful service runs once per instance; blue-green colours only the others.
    stateful: StrictBool | None = None
    swarm: SwarmServiceSpec | None = None  # replicas and placement on runtime swarm

    @model_validator(mode="before")
    @classmethod
    def _public_shorthand(cls, data: Any) -> Any:
        # `public: 8000` is the common case; it means port 8000 at path "/".
        if isinstance(data, dict) and isinstance(data.get("public"), int):
            return {**data, "public": {"port": data["public"]}}
        return data

    @field_validator("health")
    @classmethod
    def _health_is_path(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith("/"):
            raise ValueError("must be an HTTP path starting with '/', e.g. /api/health")
        return value

    @field_validator("secrets")
    @classmethod
    def _secret_names(cls, value: list[str]) -> list[str]:
        for name in value:
            if not VAR_NAME.match(name):
                raise ValueError(f"{name!r} is not a valid variable name")
        return value


class PostgresSpec(Model):
    url_var: str = "DATABASE_URL"
    seed: str | None = None


class S3Spec(Model):
    bucket_var: str = "S3_BUCKET"
    endpoint_var: str = "S3_ENDPOINT"


class RedisSpec(Model):
    url_var: str = "REDIS_URL"
    prefix_var: str = "REDIS_PREFIX"


class Resources(Model):
    postgres: PostgresSpec | None = None
    s3: S3Spec | None = None
    redis: RedisSpec | None = None

    @model_validator(mode="before")
    @classmethod
    def _empty_means_defaults(cls, data: Any) -> Any:
        # `postgres: {}` and a bare `postgres:` (null) both mean "give me a database".
        if isinstance(data, dict):
            return {k: ({} if v is None or v is True else v) for k, v in data.items()}
        return data


class GatesSpec(Model):
    """The quality gates of promoting into an env (seed 000 §5). Left out: the env's defaults.

    Report paths are relative to envplane.yaml and may contain {version}; naming a report
    turns its gate on.
    """

    order: bool | None = None
    health: bool | None = None
    p95_ms: float | None = Field(default=None, gt=0)
    p95: bool | None = None  # false turns the performance gate off
    p95_requests: int = Field(default=50, ge=5, le=10000)
    approval: bool | None = None
    junit: str | None = None
    coverage: str | None = None
    min_coverage: float = Field(default=80.0, ge=0, le=100)
    security: str | None = None
    max_severity: Severity = "high"
    migrations: bool | None = None
    changelog: str | None = None
    # A rollback to a version that never passed these gates: `ask` for confirmation (--yes
    # without a terminal), or `refuse` it (it must be promoted through them).
    rollback_ungated: Literal["ask", "refuse"] = "ask"


class HookSpec(Model):
    """A command run in a one-off container of the new version, before it serves."""

    service: str
    command: str


class SharedSpec(Model):
    """What instances of one host group may share on purpose (README: the isolation
    invariant). Anything here is allowed by the plan and reported by `verify` as declared
    sharing; anything not here that two instances take from the host is a clash."""

    # Host folders (or folders above them) that services bind-mount; Compose's `${VAR}`
    # forms work, with the same variables as the Compose files.
    binds: list[str] = Field(default_factory=list)
    # Compose services that may run in the host's network, PID or IPC namespace.
    host_network: list[str] = Field(default_factory=list)
    host_pid: list[str] = Field(default_factory=list)
    host_ipc: list[str] = Field(default_factory=list)

    @field_validator("binds", "host_network", "host_pid", "host_ipc", mode="before")
    @classmethod
    def _one_or_many(cls, value: Any) -> Any:
        return [value] if isinstance(value, str) else value


DURATION = re.compile(r"^\d+[smhdw]$")
AGE_RECIPIENT = re.compile(r"^age1[0-9a-z]{58}$")
SSH_RECIPIENT = re.compile(r"^(ssh-ed25519|ssh-rsa) [A-Za-z0-9+/=]+( .*)?$")


def _duration_shape(value: str | None) -> str | None:
    if value is not None and not DURATION.match(value):
        raise ValueError("must be a number and a unit, e.g. 60s, 24h, 30d")
    return value


class KeepSpec(Model):
    """How many verified backups retention keeps: the newest `last`, plus the newest of
    each of the last `daily` days, `weekly` weeks and `monthly` months."""

    last: int = Field(default=7, ge=1, le=10000)
    daily: int = Field(default=7, ge=0, le=10000)
    weekly: int = Field(default=4, ge=0, le=10000)
    monthly: int = Field(default=6, ge=0, le=10000)


class BackupSpec(Model):
    """Where an env's backups go and who can read them (issue 13, README: Disaster recovery).

    `store`: s3://bucket/prefix (the env's S3 server settings) or file:///path.
    `recipients`: age public keys (age1…, ssh-ed25519 …) or the path of a file of them,
    relative to envplane.yaml. Left out: a key envplane generates outside the project."""

    store: str | None = None
    recipients: list[str] | str | None = None
    keep: KeepSpec = Field(default_factory=KeepSpec)
    every: str | None = None
    archive_timeout: str = "60s"

    @field_validator("store")
    @classmethod
    def _store_shape(cls, value: str | None) -> str | None:
        if value is None:
            return value
        if value.startswith("s3://"):
            bucket = value[5:].split("/", 1)[0]
            if not re.match(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$", bucket):
                raise ValueError("s3://BUCKET/prefix needs a valid bucket name (3-63 of a-z, 0-9, '.', '-')")
            return value
        if value.startswith("file:///") or value.startswith("file://~/"):
            return value
        raise ValueError("must be s3://bucket/prefix or file:///absolute/path")

    @field_validator("recipients")
    @classmethod
    def _recipients_shape(cls, value: list[str] | str | None) -> list[str] | str | None:
        if isinstance(value, list):
            if not value:
                raise ValueError("name at least one recipient (age1…), or leave the key out")
            for item in value:
                if not (AGE_RECIPIENT.match(item) or SSH_RECIPIENT.match(item)):
                    raise ValueError(f"{item[:20]!r}… is not an age recipient (age1…) or an SSH public key")
        elif isinstance(value, str) and not value.strip():
            raise ValueError("must name a file of recipients, or be a list of them")
        return value

    @field_validator("every", "archive_timeout")
    @classmethod
    def _durations(cls, value: str | None) -> str | None:
        return _duration_shape(value)


class DrCheckSpec(Model):
    """One check a drill runs against the restored instance: a SQL query and the first
    column of its first row as text, or an HTTP path of a public service and its status."""

    name: str | None = None
    sql: str | None = None
    expect: str | int | None = None
    http: str | None = None
    service: str | None = None
    status: int = Field(default=200, ge=100, le=599)
    contains: str | None = None

    @model_validator(mode="after")
    def _one_kind(self) -> DrCheckSpec:
        if (self.sql is None) == (self.http is None):
            raise ValueError("give either `sql:` (with `expect:`) or `http:` (a path)")
        if self.sql is not None and self.expect is None:
            raise ValueError("a `sql:` check needs `expect:` (the first column of the first row)")
        if self.http is not None and not self.http.startswith("/"):
            raise ValueError("`http:` is a path starting with '/', e.g. /api/health")
        return self


class DrSpec(Model):
    """Recovery targets and what a drill checks (issue 13)."""

    checks: list[DrCheckSpec] = Field(default_factory=list)
    rto: str = "1h"
    rpo: str = "24h"
    drill_every: str = "30d"

    @field_validator("rto", "rpo", "drill_every")
    @classmethod
    def _durations(cls, value: str) -> str:
        value = _duration_shape(value) or value
        return value


# A Kubernetes quantity of storage (resource.Quantity): 1Gi, 500Mi, 20G, 1e9, 1.5Gi.
STORAGE = re.compile(r"^[0-9]+(\.[0-9]+)?([eE][0-9]+|[KMGTPE]i?|k)?$")
KUBE_LABEL_KEY = re.compile(
    r"^([a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?/)?[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$")
KUBE_LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]{0,61})?[A-Za-z0-9])?$")


class IngressControllerSpec(Model):
    """Where the cluster's ingress controller runs: the only pods from outside an instance's
    namespace that its NetworkPolicies let in (k3s ships Traefik in kube-system)."""

    namespace: str = "kube-system"
    labels: dict[str, str] = Field(default_factory=lambda: {"app.kubernetes.io/name": "traefik"})

    @field_validator("namespace")
    @classmethod
    def _namespace(cls, value: str) -> str:
        if not re.match(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$", value):
            raise ValueError("must be a Kubernetes namespace name (a-z, 0-9, '-')")
        return value

    @field_validator("labels")
    @classmethod
    def _labels(cls, value: dict[str, str]) -> dict[str, str]:
        for key, label in value.items():
            if not KUBE_LABEL_KEY.match(key) or not KUBE_LABEL_VALUE.match(label):
                raise ValueError(f"{key}: {label} is not a Kubernetes label")
        return value


class KubernetesSpec(Model):
    """An env on Kubernetes: the cluster `runtime: kubernetes` applies to (a kubeconfig
    context), and what `render --format kubernetes` puts in the manifests."""

    context: str | None = None  # required for runtime kubernetes: never "whatever is current"
    kubeconfig: str | None = None  # relative to envplane.yaml; default: kubectl's own
    ingress_class: str = "traefik"  # k3s ships Traefik with this IngressClass
    ingress_controller: IngressControllerSpec = Field(default_factory=IngressControllerSpec)
    storage_class: str | None = None  # default: the cluster's default StorageClass
    volume_size: str = "1Gi"  # each PersistentVolumeClaim, unless volume_sizes names it
    volume_sizes: dict[str, str] = Field(default_factory=dict)  # Compose volume (or `data`) -> size

    @field_validator("context", "kubeconfig")
    @classmethod
    def _plain(cls, value: str | None) -> str | None:
        if value is not None and (not value or value.startswith("-") or not value.isprintable()):
            raise ValueError("must be a name, not empty, not starting with '-'")
        return value

    @field_validator("ingress_class", "storage_class")
    @classmethod
    def _class_name(cls, value: str | None) -> str | None:
        if value is not None and not re.match(r"^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$", value):
            raise ValueError("must be a Kubernetes object name (a-z, 0-9, '-', '.')")
        return value

    @field_validator("volume_size")
    @classmethod
    def _size(cls, value: str) -> str:
        if not STORAGE.match(value):
            raise ValueError("must be a storage size, e.g. 1Gi, 500Mi, 20G")
        return value

    @field_validator("volume_sizes")
    @classmethod
    def _sizes(cls, value: dict[str, str]) -> dict[str, str]:
        for name, size in value.items():
            if not STORAGE.match(size):
                raise ValueError(f"{name}: {size!r} is not a storage size, e.g. 1Gi, 500Mi, 20G")
        return value


class TlsSpec(Model):
    """The files of a tcp:// engine's mutual TLS (Docker's --tlscacert/--tlscert/--tlskey),
    relative to envplane.yaml or starting with ~."""

    ca: str
    cert: str
    key: str


class ClusterSpec(Model):
    """A Kubernetes cluster of `hosts:`: a context of a kubeconfig, as runtime kubernetes
    applies to it (`environments.ENV.kubernetes` may name the same, never another)."""

    context: str
    kubeconfig: str | None = None  # relative to envplane.yaml; default: kubectl's own

    @field_validator("context", "kubeconfig")
    @classmethod
    def _plain(cls, value: str | None) -> str | None:
        if value is not None and (not value or value.startswith("-") or not value.isprintable()):
            raise ValueError("must be a name, not empty, not starting with '-'")
        return value


class HostSpec(Model):
    """One entry of `hosts:`: a Docker engine (`server: ssh://deploy@203.0.113.10`, or the
    long form), or a Kubernetes cluster (`kubernetes: {context: NAME}`)."""

    engine: str | None = None
    kubernetes: ClusterSpec | None = None  # instead of engine: the cluster of runtime kubernetes
    identity: str | None = None  # ssh: the private key to log in with (else ssh-agent's)
    known_hosts: str | None = None  # ssh: a known_hosts file (else ~/.ssh/known_hosts)
    tls: TlsSpec | None = None  # tcp: required; an engine without TLS is root for anyone
    # Resource servers of the envs on this host, as env `servers:` names them (variables):
    # containers on the host must reach them at the address the variable holds.
    servers: dict[ServerKey, str] = Field(default_factory=dict)
    proxy: str | None = None  # where this host's proxy serves HTTP (default 0.0.0.0:80)

    @model_validator(mode="before")
    @classmethod
    def _url_shorthand(cls, data: Any) -> Any:
        return {"engine": data} if isinstance(data, str) else data

    @field_validator("engine")
    @classmethod
    def _engine_url(cls, value: str | None) -> str | None:
        from envplane.hosts.engine import parse

        if value is not None:
            parse(value)  # ValueError names what is wrong
        return value

    @field_validator("servers")
    @classmethod
    def _server_vars(cls, value: dict[str, str]) -> dict[str, str]:
        for name in value.values():
            if not VAR_NAME.match(name):
                raise ValueError("must name the variable (e.g. A_POSTGRES_URL), not its value")
        return value

    @field_validator("identity", "known_hosts")
    @classmethod
    def _file_path(cls, value: str | None) -> str | None:
        if value is not None and (not value or value.startswith("-") or not value.isprintable()):
            raise ValueError("must be a file path")
        return value

    @field_validator("proxy")
    @classmethod
    def _listen(cls, value: str | None) -> str | None:
        if value is not None and not re.match(r"^[0-9A-Za-z.:\[\]-]*:[0-9]{1,5}$", value):
            raise ValueError("must be ADDRESS:PORT, e.g. 0.0.0.0:80")
        return value

    @model_validator(mode="after")
    def _fits_kind(self) -> HostSpec:
        from envplane.hosts.engine import parse

        if (self.engine is None) == (self.kubernetes is None):
            raise ValueError("needs either `engine:` (a Docker engine: ssh://, unix://, tcp://) or "
                             "`kubernetes: {context: NAME}` (a cluster), not both")
        if self.engine is None:
            if self.proxy or self.identity or self.known_hosts or self.tls:
                raise ValueError("a Kubernetes cluster takes `kubernetes:` and `servers:` only (kubectl "
                                 "reaches it through the kubeconfig; Traefik routes its Ingresses)")
            return self
        kind = parse(self.engine).kind
        if kind == "tcp" and self.tls is None:
            raise ValueError("a tcp:// engine needs `tls: {ca, cert, key}` (an engine without TLS "
                             "is root for anyone who reaches the port)")
        if kind != "tcp" and self.tls is not None:
            raise ValueError("`tls:` is for tcp:// engines")
        if kind != "ssh" and (self.identity or self.known_hosts):
            raise ValueError("`identity:` and `known_hosts:` are for ssh:// engines")
        return self


class RegistrySpec(Model):
    """A registry releases push to once and hosts pull from by digest (`registry: host:port`).
    Its credentials, if it asks for any, are in the secret store (README: Images to hosts)."""

    address: str

    @model_validator(mode="before")
    @classmethod
    def _shorthand(cls, data: Any) -> Any:
        return {"address": data} if isinstance(data, str) else data

    @field_validator("address")
    @classmethod
    def _host_port(cls, value: str) -> str:
        if not re.match(r"^[A-Za-z0-9][A-Za-z0-9.-]*(:[0-9]{1,5})?$", value):
            raise ValueError("must be HOST or HOST:PORT of a registry, e.g. registry.example.com:5000")
        return value


class EnvSpec(Model):
    """Overrides of one environment. Every field left out keeps the ladder's default."""

    extends: str | None = None
    runtime: Runtime | None = None
    instances: InstanceKind | None = None
    suffix: str | None = None
    domain: str | None = None
    domain_suffix: str | None = None
    data_path: str | None = None
    secrets_env: str | None = None
    host: str | None = None
    port_mode: PortMode | None = None
    port_offset: int | None = Field(default=None, ge=-65534, le=65534)
    port_base: Port | None = None
    port_stride: int | None = Field(default=None, ge=1, le=1000)
    ports: dict[str, dict[int, Port]] = Field(default_factory=dict)
    volumes: VolumeMode | None = None
    compose: list[str] = Field(default_factory=list)
    profiles: list[str] = Field(default_factory=list)
    lifecycle: str | None = None
    ttl: str | None = None
    env: dict[str, str] = Field(default_factory=dict)
    # Names of the environment variables that hold this env's servers (never the values):
    # {postgres: PROD_POSTGRES_URL}. Unnamed ones come from ENVPLANE_POSTGRES_URL and friends.
    servers: dict[ServerKey, str] = Field(default_factory=dict)
    strategy: Strategy | None = None  # how a release replaces the running one
    routing: Routing | None = None  # else the top-level routing:, else caddy
    promote_from: str | None = None  # the env a version must pass first
    drain_seconds: float | None = Field(default=None, ge=0, le=600)
    gates: GatesSpec | None = None
    backup: BackupSpec | None = None  # disaster recovery (dr/): overrides the top-level backup:
    dr: DrSpec | None = None
    kubernetes: KubernetesSpec | None = None  # the cluster and settings of runtime kubernetes

    @field_validator("servers")
    @classmethod
    def _server_vars(cls, value: dict[str, str]) -> dict[str, str]:
        for name in value.values():
            if not VAR_NAME.match(name):
                # Never echo it: what stands here by mistake is often a URL with a password.
                raise ValueError("must name the variable (e.g. PROD_POSTGRES_URL), not its value")
        return value

    @field_validator("compose", "profiles", mode="before")
    @classmethod
    def _one_or_many(cls, value: Any) -> Any:
        return [value] if isinstance(value, str) else value

    @field_validator("suffix", "domain_suffix")
    @classmethod
    def _suffix_shape(cls, value: str | None) -> str | None:
        if value and not re.match(r"^-[a-z0-9][a-z0-9-]*$", value):
            raise ValueError("must be empty or look like '-staging' (a dash, then a-z, 0-9, -)")
        return value

    @field_validator("domain", "secrets_env")
    @classmethod
    def _template_shape(cls, value: str | None) -> str | None:
        problem = template_problem(value) if value is not None else None
        if problem is not None:
            raise ValueError(problem)
        return value

    @field_validator("data_path")
    @classmethod
    def _data_path_shape(cls, value: str | None) -> str | None:
        problem = template_problem(value, DATA_PATH_FIELDS) if value is not None else None
        if problem is not None:
            raise ValueError(problem)
        return value

    @field_validator("ttl")
    @classmethod
    def _ttl_shape(cls, value: str | None) -> str | None:
        if value is not None and not re.match(r"^\d+[smhdw]$", value):
            raise ValueError("must be a number and a unit, e.g. 7d, 12h, 30m")
        return value


GITHUB_LOGIN = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9-]{0,38})$")
GIT_REMOTE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9._-]*$")


# What git allows in a branch name, less what could be read as an option or a revision
# expression: no leading '-', no '..', '@{', '//', no trailing '/', '.' or '.lock'.
GIT_BRANCH = re.compile(r"^(?!-)(?!.*\.\.)(?!.*@\{)(?!.*//)[A-Za-z0-9._/@+-]{1,200}(?<![/.])(?<!\.lock)$")


class PushRelease(Model):
    """A push to `branch` makes the next version of that commit and releases it to `env`
    (seed 002: every push to main goes to staging)."""

    branch: str
    env: str = "staging"

    @field_validator("branch")
    @classmethod
    def _branch_name(cls, value: str) -> str:
        if not GIT_BRANCH.match(value) or any(part.startswith(".") for part in value.split("/")):
            raise ValueError(f"{value!r} is not a branch name")
        return value


class WebhookSpec(Model):
    """Which pull requests `envplane webhook` deploys, and from where it fetches them."""

    allow_forks: bool = False  # a PR whose branch lives in another repository runs its code here
    authors: list[str] | None = None  # GitHub logins whose PRs are deployed; left out: anyone's
    remote: str = "origin"  # the git remote of the server's checkout that PR heads come from
    max_worktrees: int = Field(default=10, ge=1, le=500)
    release_on_push: PushRelease | None = None  # left out: a push releases nothing

    @field_validator("allow_forks", mode="before")
    @classmethod
    def _strict_bool(cls, value: Any) -> Any:
        if not isinstance(value, bool):  # "no" or "false" in quotes must not read as a choice
            raise ValueError("must be true or false")
        return value

    @field_validator("authors")
    @classmethod
    def _logins(cls, value: list[str] | None) -> list[str] | None:
        for login in value or ():
            if not GITHUB_LOGIN.match(login):
                raise ValueError(f"{login!r} is not a GitHub login")
        return value

    @field_validator("remote")
    @classmethod
    def _remote_name(cls, value: str) -> str:
        if not GIT_REMOTE.match(value):
            raise ValueError("must be the name of a git remote, e.g. origin")
        return value


class Spec(Model):
    app: str
    domain: str
    prefix: str | None = None
    compose: list[str]
    services: dict[str, ServiceSpec] = Field(default_factory=dict)
    resources: Resources = Field(default_factory=Resources)
    secret_store: SecretStoreKind | None = None  # ENVPLANE_SECRETS overrides it; default file
    environments: dict[str, EnvSpec | None] = Field(default_factory=dict)
    hooks: dict[HookName, HookSpec] = Field(default_factory=dict)
    shared: SharedSpec = Field(default_factory=SharedSpec)
    webhook: WebhookSpec = Field(default_factory=WebhookSpec)
    # An allowed-signers file (git's format) of the people who may approve a promotion,
    # relative to envplane.yaml; read when an approval is made or checked.
    approvers: str | None = None
    # Disaster recovery defaults of every env (environments.<env>.backup/dr override them).
    backup: BackupSpec | None = None
    dr: DrSpec | None = None
    # Engines of host groups and envs (README: Hosts and engines); left out: the local engine.
    hosts: dict[str, HostSpec] = Field(default_factory=dict)
    registry: RegistrySpec | None = None  # where releases send images to other hosts
    routing: Routing | None = None  # of every env that names none; default caddy

    @field_validator("app", "prefix")
    @classmethod
    def _name_shape(cls, value: str | None) -> str | None:
        if value is not None and not valid_name(value):
            raise ValueError(f"must be {NAME_RULE}")
        return value

    @field_validator("domain")
    @classmethod
    def _domain_shape(cls, value: str) -> str:
        if not DOMAIN.match(value):
            raise ValueError("must be a lowercase DNS name, e.g. example.com")
        return value

    @field_validator("compose", mode="before")
    @classmethod
    def _compose_list(cls, value: Any) -> Any:
        return [value] if isinstance(value, str) else value

    @field_validator("compose")
    @classmethod
    def _compose_not_empty(cls, value: list[str]) -> list[str]:
        if not value:
            raise ValueError("name at least one Compose file")
        return value

    @field_validator("environments")
    @classmethod
    def _env_names(cls, value: dict[str, EnvSpec | None]) -> dict[str, EnvSpec | None]:
        for name in value:
            if not ENV_NAME.match(name) or len(name) > 30:
                raise ValueError(f"environment name {name!r} must be a-z, 0-9 and '-'")
        return value

    @property
    def subdomain(self) -> str:
        return self.prefix or self.app

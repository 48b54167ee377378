"""The envplane.yaml schema: what Compose does not say about an app.

Every model forbids unknown keys (a typo is an error with its line) and is frozen:
resolving an environment builds new objects, it never edits these.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

NAME = re.compile(r"^[a-z][a-z0-9-]*[a-z0-9]$")
ENV_NAME = re.compile(r"^[a-z][a-z0-9-]*$")
DOMAIN = re.compile(
    r"^(?=.{1,253}$)([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)*$"
)
VAR_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")

Port = Annotated[int, Field(ge=1, le=65535)]
Runtime = Literal["process", "compose", "swarm", "kubernetes", "dokploy"]
InstanceKind = Literal["one", "per-pr", "per-run"]
PortMode = Literal["offset", "block", "ephemeral"]
VolumeMode = Literal["named", "bind"]
ServerKey = Literal["postgres", "s3_endpoint", "s3_access_key", "s3_secret_key", "redis"]
SecretStoreKind = Literal["file", "vault", "sops"]
Strategy = Literal["recreate", "blue-green"]
Severity = Literal["low", "medium", "high", "critical"]
HookName = Literal["pre_deploy", "migrate", "post_deploy"]


class Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=False)


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


class ServiceSpec(Model):
    public: PublicRoute | None = None
    health: str | None = None
    dev: str | None = None
    dev_cwd: str | None = None
    env: dict[str, str] = Field(default_factory=dict)
    secrets: list[str] = Field(default_factory=list)
    uses: list[Literal["postgres", "s3", "redis"]] = Field(default_factory=list)

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


class HookSpec(Model):
    """A command run in a one-off container of the new version, before it serves."""

    service: str
    command: str


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
    promote_from: str | None = None  # the env a version must pass first
    drain_seconds: float | None = Field(default=None, ge=0, le=600)
    gates: GatesSpec | None = None

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

    @field_validator("ttl")
    @classmethod
    def _ttl_shape(cls, value: str | None) -> str | None:
        if value is not None and not re.match(r"^\d+[smhdw]$", value):
            raise ValueError("must be a number and a unit, e.g. 7d, 12h, 30m")
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

    @field_validator("app", "prefix")
    @classmethod
    def _name_shape(cls, value: str | None) -> str | None:
        if value is not None and (not NAME.match(value) or len(value) > 40):
            raise ValueError(
                "must be 2-40 characters of a-z, 0-9 and '-', starting with a letter"
            )
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

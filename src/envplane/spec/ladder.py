"""The environment ladder: the built-in environments and their defaults (DESIGN.md's table).

Strings here are templates filled per instance: {app}, {prefix}, {domain}, {pr}, {run};
data paths also {project_dir}, the folder of envplane.yaml. Every data path names the app
and the instance in its last two folders (datapath.py: the only folders purge deletes).
A spec overrides any field per environment, and adds environments that extend one of
these (``production-sg: {extends: production, domain: "{prefix}-sg.{domain}"}``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from types import MappingProxyType

from envplane.spec.models import (
    EnvSpec,
    GatesSpec,
    InstanceKind,
    KubernetesSpec,
    PortMode,
    Routing,
    Runtime,
    Strategy,
    VolumeMode,
)


@dataclass(frozen=True)
class EnvConfig:
    """One environment with every default filled in; still templated per instance."""

    name: str
    runtime: Runtime
    instances: InstanceKind
    suffix: str
    domain: str | None
    domain_suffix: str
    data_path: str
    secrets_env: str
    host: str
    port_mode: PortMode
    port_offset: int = 0
    port_offset_auto: bool = False  # move past the Compose ports (see ports.py)
    port_base: int = 30000
    port_base_auto: bool = False  # add a per-app slot so two apps' PR 1 differ (ports.py)
    port_stride: int = 10
    ports: Mapping[str, Mapping[int, int]] = field(default_factory=dict)
    volumes: VolumeMode = "named"
    compose: tuple[str, ...] = ()
    profiles: tuple[str, ...] = ()
    lifecycle: str = "persistent"
    ttl: str | None = None
    env: Mapping[str, str] = field(default_factory=dict)
    servers: Mapping[str, str] = field(default_factory=dict)  # resource -> variable name
    builtin: bool = True
    strategy: Strategy = "recreate"
    routing: Routing = "caddy"  # set by spec.load.resolve_envs: the env's, the spec's, or caddy
    promote_from: str | None = None
    drain_seconds: float = 2.0  # blue-green: how long the old colour finishes its requests
    gates: GatesSpec = field(default_factory=GatesSpec)  # promotion into this env
    kubernetes: KubernetesSpec = field(default_factory=KubernetesSpec)  # runtime kubernetes, render

    @property
    def keeps_data(self) -> bool:
        """Its one instance holds data meant to last (staging, production, dr and the envs
        extending them): a purge of it is confirmed first."""
        return self.instances == "one" and self.lifecycle != "throwaway"


# Persistent envs keep named volumes under their data path (volumes="bind") so backups
# and purges find them in one place (seed 000 §4.3); throwaway envs use plain volumes.
# Why these port defaults: every env that shares a host gets its own block. Seed 003
# shifted staging by +1 and then had to move 3002 by hand; staging starts at +10000 and
# docker at +20000 (the tour runs both on one machine, and both on the engine of this
# machine: LOCAL_GROUPS), each moving on past the Compose file's own ports (RabbitMQ's
# 5672/15672 would collide at exactly +10000). PRs of test take blocks from 30000, below
# which +20000 keeps a Compose port under 10000. `port_offset: 1` reproduces the seed.
LADDER: Mapping[str, EnvConfig] = MappingProxyType(
    {
        "local": EnvConfig(
            name="local",
            runtime="process",
            instances="one",
            suffix="-local",
            domain="localhost",
            domain_suffix="",
            data_path="{project_dir}/.envplane/data/{app}-local",
            secrets_env="local",
            host="workstation",
            port_mode="offset",
            port_offset=0,
            lifecycle="throwaway",
        ),
        "docker": EnvConfig(
            name="docker",
            runtime="compose",
            instances="one",
            suffix="-docker",
            domain="{prefix}-docker.localhost",
            domain_suffix="",
            data_path="{project_dir}/.envplane/data/{app}-docker",
            secrets_env="docker",
            host="workstation",
            port_mode="offset",
            port_offset=20000,
            port_offset_auto=True,
            lifecycle="throwaway",
        ),
        "ci": EnvConfig(
            name="ci",
            runtime="compose",
            instances="per-run",
            suffix="-ci-{run}",
            domain=None,
            domain_suffix="-ci-{run}",
            data_path="/tmp/envplane/{app}-ci-{run}",
            secrets_env="ci-{run}",
            host="ci",
            port_mode="ephemeral",
            lifecycle="minutes",
        ),
        "test": EnvConfig(
            name="test",
            runtime="compose",
            instances="per-pr",
            suffix="-pr-{pr}",
            domain="{prefix}-pr-{pr}.{domain}",
            domain_suffix="-pr-{pr}",
            data_path="/data/test/{app}-pr-{pr}",
            secrets_env="test-pr-{pr}",
            host="server",
            volumes="bind",
            port_mode="block",
            port_base=30000,
            port_base_auto=True,
            port_stride=10,
            lifecycle="destroyed on PR close + TTL",
            ttl="7d",
        ),
        "staging": EnvConfig(
            name="staging",
            runtime="compose",
            instances="one",
            suffix="-staging",
            domain="{prefix}-staging.{domain}",
            domain_suffix="-staging",
            data_path="/data/{app}/staging",
            secrets_env="staging",
            host="server",
            volumes="bind",
            port_mode="offset",
            port_offset=10000,
            port_offset_auto=True,
            lifecycle="persistent",
            promote_from="test",
        ),
        "production": EnvConfig(
            name="production",
            runtime="compose",
            instances="one",
            suffix="",
            domain="{prefix}.{domain}",
            domain_suffix="",
            # Not /data/{app} (seed 000): staging's /data/{app}/staging would sit inside
            # it, and purging or backing up production would take staging's data along.
            data_path="/data/{app}/production",
            secrets_env="production",
            host="server",
            volumes="bind",
            port_mode="offset",
            port_offset=0,
            lifecycle="persistent, backed up",
            strategy="blue-green",
            promote_from="staging",
            # Seed 000 §5.3: production also needs staging's p95 and a second person.
            gates=GatesSpec(p95=True, approval=True),
        ),
        "dr": EnvConfig(
            name="dr",
            runtime="compose",
            instances="one",
            suffix="-dr",
            domain="{prefix}-dr.{domain}",
            domain_suffix="-dr",
            data_path="/data/dr/{app}",
            secrets_env="dr",
            # Seed 000 §3.6: DR is a standby host, so it keeps production's ports.
            host="dr",
            volumes="bind",
            port_mode="offset",
            port_offset=0,
            lifecycle="cold; restored from backups",
            strategy="blue-green",
            promote_from="production",
        ),
    }
)

# The host groups that are this machine until the spec's `hosts:` names their engine: the
# workstation you develop on, the CI runner and the server are one machine in the tour, and
# on one machine their host ports and folders meet (isolation.place). dr is a standby host
# (seed 000 §3.6) and a new env gets a group, and so a host, of its own.
LOCAL_GROUPS = frozenset({"workstation", "ci", "server"})


# Fields of EnvSpec that map one-to-one onto EnvConfig.
_SCALARS = (
    "runtime", "instances", "suffix", "domain", "domain_suffix", "data_path", "secrets_env",
    "host", "port_mode", "port_offset", "port_base", "port_stride", "volumes", "lifecycle", "ttl",
    "strategy", "promote_from", "drain_seconds", "kubernetes",
)


def base_of(name: str, override: EnvSpec | None) -> str | None:
    """Which built-in env a spec env starts from: itself, its `extends`, or its name's head.

    `production-sg` starts from `production` without saying so; anything else new must
    name what it extends.
    """
    if override is not None and override.extends:
        return override.extends
    if name in LADDER:
        return name
    head = name.split("-", 1)[0]
    return head if head in LADDER else None


def derive(name: str, base: EnvConfig, override: EnvSpec | None) -> EnvConfig:
    """The env `name` = base with the spec's overrides laid over it (a new object)."""
    if override is None:
        return replace(base, name=name, builtin=name in LADDER)
    changes: dict[str, object] = {
        key: getattr(override, key) for key in _SCALARS if getattr(override, key) is not None
    }
    if override.port_offset is not None:
        changes["port_offset_auto"] = False  # an offset the user wrote is kept as written
    if override.port_base is not None:
        changes["port_base_auto"] = False
    if name != base.name:
        changes = {**_derived_defaults(name, base), **changes}
    return replace(
        base,
        name=name,
        builtin=name in LADDER,
        ports={**base.ports, **override.ports},
        compose=(*base.compose, *override.compose),
        profiles=(*base.profiles, *override.profiles),
        env={**base.env, **override.env},
        servers={**base.servers, **{str(k): v for k, v in override.servers.items()}},
        gates=base.gates.model_copy(update={k: getattr(override.gates, k)
                                            for k in override.gates.model_fields_set})
        if override.gates else base.gates,
        **changes,  # type: ignore[arg-type]
    )


def _derived_defaults(name: str, base: EnvConfig) -> dict[str, object]:
    """Defaults that keep a new env apart from the one it extends.

    A new env (`production-sg`) usually runs on a host of its own, so it gets its own
    host group; its names, domain, data path and secret path get its own suffix.
    """
    suffix = _retarget(base.suffix, base.name, name) or f"-{name}"
    domain = base.domain
    if domain is not None and domain.startswith("{prefix}"):
        domain = "{prefix}" + suffix + domain[domain.index("."):]
    return {
        "suffix": suffix,
        "domain_suffix": suffix,
        "domain": domain,
        "data_path": _retarget(base.data_path, base.name, name)
        if base.name in base.data_path
        else base.data_path + suffix,
        "secrets_env": _retarget(base.secrets_env, base.name, name),
        "host": name,
    }


def _retarget(template: str, old: str, new: str) -> str:
    return template.replace(old, new) if old in template else template

"""Load a project: envplane.yaml, its environments, and the text of its Compose files.

This is the only part of spec loading that reads files. Interpolating and merging the
Compose files happens per environment instance in `envplane.target`, because Compose
files may use the very variables envplane sets (`${DATA_PATH}`, `${ENV_SUFFIX}`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from types import MappingProxyType

from envplane.compose.dotenv import read_dotenv
from envplane.compose.load import read_compose_files
from envplane.errors import Problem, SpecError
from envplane.spec.ladder import LADDER, EnvConfig, base_of, derive
from envplane.spec.models import Spec
from envplane.spec.source import Document, FieldPath, load_yaml
from envplane.spec.validate import validate

SPEC_FILE = "envplane.yaml"
# Seed 001's layout: compose/base.yml plus compose/{env}.yml; `prod` is the seed's name.
_OVERLAY_ALIASES = {"production": ("production", "prod"), "local": ("local", "dev")}


@dataclass(frozen=True)
class Project:
    """Everything read from disk for one app; pure functions take it from here."""

    spec: Spec
    doc: Document
    root: Path
    envs: Mapping[str, EnvConfig]
    compose: tuple[Document, ...]
    overlays: Mapping[str, tuple[Document, ...]]
    dotenv: Mapping[str, str]
    environ: Mapping[str, str]
    # Variables that hold credentials a Compose file must never read (`credential_variables`);
    # a PR's head keeps the server's as well.
    credentials: frozenset[str] = frozenset()

    @property
    def app(self) -> str:
        return self.spec.app

    def env(self, name: str) -> EnvConfig:
        from envplane.errors import UsageError

        if name not in self.envs:
            raise UsageError(
                f"unknown environment {name!r}",
                "known environments: " + ", ".join(self.envs),
            )
        return self.envs[name]


def load_spec(path: Path) -> tuple[Spec, Document]:
    doc = load_yaml(path)
    if not isinstance(doc.data, dict):
        raise SpecError([doc.problem((), "must be a mapping of keys (app, domain, compose, ...)")])
    return validate(Spec, doc), doc


def load_project(path: Path, environ: Mapping[str, str]) -> Project:
    """Read envplane.yaml at `path` and every file it names. Raises SpecError."""
    path = path.resolve()
    spec, doc = load_spec(path)
    root = path.parent
    envs = resolve_envs(spec, doc)
    compose_paths = [
        _compose_path(root, name, doc, ("compose", index)) for index, name in enumerate(spec.compose)
    ]
    compose = tuple(read_compose_files(compose_paths))
    overlays = {
        name: tuple(read_compose_files(_overlay_paths(root, compose_paths, env, doc)))
        for name, env in envs.items()
    }
    dotenv = read_dotenv(root / ".env")
    return Project(
        spec=spec,
        doc=doc,
        root=root,
        envs=MappingProxyType(envs),
        compose=compose,
        overlays=MappingProxyType(overlays),
        dotenv=MappingProxyType(dict(dotenv)),
        environ=MappingProxyType(dict(environ)),
        credentials=credential_variables(spec),
    )


# Read by envplane's backends, never meant for a container (besides every ENVPLANE_*).
_CREDENTIALS = frozenset({"VAULT_TOKEN", "VAULT_SECRET_ID", "SOPS_AGE_KEY", "SOPS_AGE_KEY_FILE"})


def credential_variables(spec: Spec) -> frozenset[str]:
    """The names of the variables that hold envplane's credentials: the secret stores',
    and the admin URLs and keys the spec's `servers:` name (every env's and host's)."""
    named = {name for env in spec.environments.values() if env is not None for name in env.servers.values()}
    named |= {name for host in spec.hosts.values() for name in host.servers.values()}
    return _CREDENTIALS | named


# The one setting of envplane's a Compose file reads: the platform's publishes its ports on it.
_FOR_COMPOSE = frozenset({"ENVPLANE_PLATFORM_IP"})


def is_credential(name: str, credentials: frozenset[str]) -> bool:
    """envplane's own settings (ENVPLANE_*: admin URLs and keys, the state store, the
    token, ...) and the names `credential_variables` gives."""
    return (name.startswith("ENVPLANE_") and name not in _FOR_COMPOSE) or name in credentials


def resolve_envs(spec: Spec, doc: Document) -> dict[str, EnvConfig]:
    """The built-in ladder plus the spec's environments, every default filled in."""
    problems: list[Problem] = []
    envs = {name: derive(name, base, spec.environments.get(name)) for name, base in LADDER.items()}
    for name, override in spec.environments.items():
        if name in LADDER and (override is None or not override.extends):
            continue
        base_name = base_of(name, override)
        if base_name is None or base_name not in LADDER:
            field = ("environments", name, "extends") if base_name else ("environments", name)
            problems.append(
                doc.problem(
                    field,
                    f"unknown environment {base_name or name!r}",
                    "a new environment extends a built-in one: "
                    + ", ".join(LADDER)
                    + " (e.g. `extends: production`)",
                )
            )
            continue
        envs[name] = derive(name, LADDER[base_name], override)
    envs = {name: _routed(spec, doc, env, problems) for name, env in envs.items()}
    from envplane.hosts.config import key_problems, with_clusters

    problems += key_problems(spec, doc, envs)
    envs, clusters = with_clusters(spec, doc, envs)
    problems += clusters
    for name, env in envs.items():
        if env.promote_from is not None and env.promote_from not in envs:
            problems.append(doc.problem(
                ("environments", name, "promote_from"),
                f"unknown environment {env.promote_from!r}",
                "environments: " + ", ".join(envs),
            ))
    problems += _push_release_problems(spec, doc, envs)
    if problems:
        raise SpecError(problems)
    return envs


def _push_release_problems(spec: Spec, doc: Document, envs: Mapping[str, EnvConfig]) -> list[Problem]:
    """`webhook.release_on_push.env` must take a release: one instance on an engine of this
    host's, no approval gate (a version reaches such an env only through `promote`)."""
    rule = spec.webhook.release_on_push
    if rule is None:
        return []
    at = ("webhook", "release_on_push", "env")
    env = envs.get(rule.env)
    if env is None:
        return [doc.problem(at, f"unknown environment {rule.env!r}", "environments: " + ", ".join(envs))]
    if env.instances != "one" or env.runtime not in ("compose", "swarm"):
        return [doc.problem(at, f"env {rule.env} has no single instance on an engine that a release "
                                "could go to", "release to staging on a push")]
    if env.gates.approval:
        return [doc.problem(at, f"env {rule.env} takes a version only through its gates (approval "
                                "among them)", "release to staging on a push, then promote")]
    return []


def _routed(spec: Spec, doc: Document, env: EnvConfig, problems: list[Problem]) -> EnvConfig:
    """The env with its routing: its own `routing:`, else the spec's, else caddy.

    Blue-green switches colours through envplane's Caddy (a marker file its routes read),
    so under traefik or none a built-in blue-green env deploys by recreate, and an env that
    asks for blue-green in so many words is refused.
    """
    own = spec.environments.get(env.name)
    routing = (own.routing if own is not None else None) or spec.routing or "caddy"
    if routing == "caddy" or env.strategy != "blue-green" or env.runtime != "compose":
        return replace(env, routing=routing)
    if own is not None and own.strategy == "blue-green":
        where = "" if own.routing else " (the top-level routing:)"
        problems.append(doc.problem(
            ("environments", env.name, "strategy"),
            f"blue-green switches colours through envplane's Caddy; env {env.name} has routing: "
            f"{routing}{where}",
            f"set environments.{env.name}.strategy: recreate, or routing: caddy"))
    return replace(env, routing=routing, strategy="recreate")


def _compose_path(root: Path, name: str, doc: Document, at: FieldPath) -> Path:
    """The Compose file `name` that the spec names at `at`; SpecError if it is not one."""
    if not doc.lines.get(at):
        at = at[:-1]  # a one-item list written as a plain string
    hint = "paths are relative to the folder of envplane.yaml"
    try:
        path = (root / name).resolve()
        found = path.is_file()
    except (OSError, ValueError) as exc:  # a name too long for the file system, a NUL byte
        raise SpecError([doc.problem(at, f"Compose file {name!r} cannot be a path: {exc}", hint)]) from None
    if not found:
        raise SpecError([doc.problem(at, f"Compose file {name!r} not found (looked at {path})", hint)])
    return path


def _overlay_paths(root: Path, bases: list[Path], env: EnvConfig, doc: Document) -> list[Path]:
    """Explicit overlays of the env, else the conventional `{env}.yml` beside a base.yml."""
    written = ("environments", env.name, "compose")
    explicit = [_compose_path(root, name, doc, (*written, index)) for index, name in enumerate(env.compose)]
    if explicit:
        return explicit
    found = []
    for base in bases:
        if base.stem != "base":
            continue
        for stem in _OVERLAY_ALIASES.get(env.name, (env.name,)):
            names = (base.with_name(f"{stem}.yml"), base.with_name(f"{stem}.yaml"))
            candidate = next((p for p in names if p.is_file()), None)
            if candidate is not None:
                found.append(candidate)
                break
    return found

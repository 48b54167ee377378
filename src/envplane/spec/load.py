"""Load a project: envplane.yaml, its environments, and the text of its Compose files.

This is the only part of spec loading that reads files. Interpolating and merging the
Compose files happens per environment instance in `envplane.target`, because Compose
files may use the very variables envplane sets (`${DATA_PATH}`, `${ENV_SUFFIX}`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType

from envplane.compose.dotenv import read_dotenv
from envplane.compose.load import read_compose_files
from envplane.errors import Problem, SpecError
from envplane.spec.ladder import LADDER, EnvConfig, base_of, derive
from envplane.spec.models import Spec
from envplane.spec.source import Document, load_yaml
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
        _compose_path(root, name, doc, index) for index, name in enumerate(spec.compose)
    ]
    compose = tuple(read_compose_files(compose_paths))
    overlays = {
        name: tuple(read_compose_files(_overlay_paths(root, compose_paths, env)))
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
    )


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
    for name, env in envs.items():
        if env.promote_from is not None and env.promote_from not in envs:
            problems.append(doc.problem(
                ("environments", name, "promote_from"),
                f"unknown environment {env.promote_from!r}",
                "environments: " + ", ".join(envs),
            ))
    if problems:
        raise SpecError(problems)
    return envs


def _compose_path(root: Path, name: str, doc: Document, index: int) -> Path:
    path = (root / name).resolve()
    if not path.is_file():
        raise SpecError(
            [
                doc.problem(
                    ("compose", index) if doc.lines.get(("compose", index)) else ("compose",),
                    f"Compose file {name!r} not found (looked at {path})",
                    "paths are relative to the folder of envplane.yaml",
                )
            ]
        )
    return path


def _overlay_paths(root: Path, bases: list[Path], env: EnvConfig) -> list[Path]:
    """Explicit overlays of the env, else the conventional `{env}.yml` beside a base.yml."""
    explicit = [(root / name).resolve() for name in env.compose]
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

"""The operations every interface (CLI, API, MCP) calls: load, resolve, check, plan, render.

Interfaces add parsing and formatting only; everything a user can do lives here.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from envplane import isolation
from envplane.compose.render import render, to_yaml
from envplane.errors import SpecError, UsageError
from envplane.names import Instance
from envplane.plan import Observed, Plan, env_files, plan_up
from envplane.spec.ladder import EnvConfig
from envplane.spec.load import Project, load_project

__all__ = ["Project", "Target", "resolve"]
from envplane.target import Target, resolve


def open_project(spec_path: Path, environ: Mapping[str, str]) -> Project:
    if spec_path.is_dir():
        spec_path = spec_path / "envplane.yaml"
    if not spec_path.exists():
        raise UsageError(
            f"no spec at {spec_path}",
            "run envplane in the app's folder, pass -f path/to/envplane.yaml, "
            "or create one with `envplane init`",
        )
    return load_project(spec_path, environ)


def default_env(environ: Mapping[str, str], given: str | None) -> str:
    env = given or environ.get("DEPLOY_ENV")
    if not env:
        raise UsageError("which environment?", "name it (e.g. `staging`) or set DEPLOY_ENV")
    return env


def resolve_checked(
    project: Project,
    env: str,
    pr: int | None = None,
    run: str | None = None,
    known: Iterable[Instance] = (),
) -> Target:
    """Resolve one instance and check it against every other instance on the ladder.

    The others are the spec's single-instance envs plus `known` (e.g. PR instances from
    the state store). An env that fails to resolve on its own is left to its own plan.
    """
    target = resolve(project, env, pr, run)
    others = [t for t in _others(project, target, known) if t is not None]
    isolation.check(target, others)
    return target


def _others(project: Project, target: Target, known: Iterable[Instance]) -> Iterable[Target | None]:
    # DATA_PATH in the environment names the data path of the instance at hand (seed 000
    # §3.3); the other instances keep their own.
    project = replace(project, environ={k: v for k, v in project.environ.items() if k != "DATA_PATH"})
    for name, cfg in project.envs.items():
        if cfg.instances == "one" and name != target.env.name:
            yield _try_resolve(project, name)
    for inst in known:
        if inst != target.instance:
            yield _try_resolve(project, inst.env, inst.pr, inst.run)


def _try_resolve(project: Project, env: str, pr: int | None = None, run: str | None = None) -> Target | None:
    try:
        return resolve(project, env, pr, run)
    except (SpecError, UsageError):
        return None


def init_spec(spec_path: Path, compose: Path | None, app: str, domain: str, force: bool) -> str:
    """Guess a spec from a Compose file and write it; refuses to overwrite without force."""
    from envplane import init
    from envplane.compose.load import build_model, read_compose_files
    from envplane.spec.models import DOMAIN, NAME

    if not NAME.match(app) or len(app) > 40:
        raise UsageError(f"app name {app!r} is not valid", "use 2-40 characters of a-z, 0-9, '-'")
    if not DOMAIN.match(domain):
        raise UsageError(f"domain {domain!r} is not valid", "use a lowercase DNS name")
    if spec_path.exists() and not force:
        raise UsageError(f"{spec_path} exists already", "pass --force to overwrite it")
    root = spec_path.resolve().parent
    compose = compose or _find_compose(root)
    docs = read_compose_files([compose.resolve()])
    model, _ = build_model(docs, {}, ())
    relative = os.path.relpath(compose.resolve(), root)
    text = init.spec_text(app, domain, relative, init.guess(model.data.get("services", {})))
    spec_path.write_text(text, encoding="utf-8")
    return text


def _find_compose(root: Path) -> Path:
    for name in ("compose.yaml", "compose.yml", "docker-compose.yml", "docker-compose.yaml"):
        if (root / name).is_file():
            return root / name
    raise UsageError(f"no Compose file in {root}", "pass --compose path/to/compose.yaml")


def plan(project: Project, target: Target, observed: Observed | None = None, build: bool = False) -> Plan:
    if target.env.runtime == "process" and not any(s.dev for s in target.services):
        raise SpecError(
            [
                project.doc.problem(
                    ("services",),
                    f"env {target.env.name} runs services as local processes, "
                    "but no service has a `dev` command",
                    "add `dev: <command>` to the services that should run locally",
                )
            ]
        )
    return plan_up(target, project.root, observed, build, project.spec.hooks)


def render_text(project: Project, target: Target) -> str:
    """The file `up` writes: it names the instance's env files, never a value in them."""
    base = project.compose[0].file.parent
    files = env_files(project.root, target)
    return to_yaml(render(target, base, files, all(Path(f).exists() for f in files.values())))


@dataclass(frozen=True)
class EnvRow:
    env: EnvConfig
    example: Target | None
    error: str | None


def env_matrix(project: Project) -> list[EnvRow]:
    """One row per env, resolved for an example instance (PR 123, CI run 456)."""
    rows = []
    for name, cfg in project.envs.items():
        pr = 123 if cfg.instances == "per-pr" else None
        run = "456" if cfg.instances == "per-run" else None
        try:
            rows.append(EnvRow(cfg, resolve(project, name, pr, run), None))
        except (SpecError, UsageError) as exc:
            rows.append(EnvRow(cfg, None, str(exc)))
    return rows


def target_dict(target: Target) -> dict[str, Any]:
    return {
        "app": target.app,
        "env": target.env.name,
        "instance": target.id,
        "runtime": target.env.runtime,
        "host": target.env.host,
        "project": target.project,
        "domain": target.domain,
        "data_path": target.data_path,
        "secrets_prefix": target.secrets_prefix,
        "database": target.database,
        "role": target.role,
        "bucket": target.bucket,
        "redis_prefix": target.redis_prefix,
        "networks": dict(target.networks),
        "volumes": dict(target.volumes),
        "volume_paths": dict(target.volume_paths),
        "external": list(target.external),
        "variables": dict(target.variables),
        "labels": dict(target.labels),
        "services": [
            {
                "name": s.name,
                "container_name": s.container_name,
                "ports": [
                    {"target": p.target, "published": p.published, "protocol": p.protocol,
                     "compose": p.source}
                    for p in s.ports
                ],
                "public": s.public.model_dump() if s.public else None,
                "url": s.url,
                "health": s.health,
                "dev": s.dev,
                "secret_path": s.secret_path,
            }
            for s in target.services
        ],
        "warnings": list(target.warnings),
    }


def plan_dict(plan: Plan) -> dict[str, Any]:
    return {
        "target": target_dict(plan.target),
        "steps": [s.as_dict() for s in plan.steps],
        "changes": plan.changes,
    }

"""The operations every interface (CLI, API, MCP) calls: load, resolve, check, plan, render.

Interfaces add parsing and formatting only; everything a user can do lives here.
"""

from __future__ import annotations

import difflib
import os
from collections import ChainMap
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path, PurePosixPath
from typing import Any

from envplane import isolation
from envplane.compose.render import render, to_yaml
from envplane.errors import SpecError, UsageError
from envplane.names import Instance
from envplane.plan import Observed, Plan, env_files, plan_up
from envplane.release.colours import check_split
from envplane.spec.ladder import EnvConfig
from envplane.spec.load import Project, load_project

__all__ = ["Project", "Target", "resolve"]
from envplane.target import ServiceTarget, Target, host_uses, resolve


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


def named_service(target: Target, name: str) -> ServiceTarget:
    """The service a user named on the command line; a name the instance does not run is
    bad input (exit 2), answered with the services it has."""
    for service in target.services:
        if service.name == name:
            return service
    names = [s.name for s in target.services]
    close = difflib.get_close_matches(name, names, n=1)
    raise UsageError(f"no service {name} in {target.app} {target.env.name} (services: {', '.join(names)})",
                     f"did you mean {close[0]}?" if close else "")


def default_env(environ: Mapping[str, str], given: str | None) -> str:
    env = given or environ.get("DEPLOY_ENV")
    if not env:
        raise UsageError("which environment?", "name it (e.g. `staging`) or set DEPLOY_ENV")
    return env


@dataclass(frozen=True)
class Known:
    """What the state store knows of an app's instances, for resolving and checking one."""

    instances: tuple[Instance, ...] = ()  # PR and CI instances that are not gone
    data_paths: Mapping[Instance, str] = field(default_factory=dict)  # recorded at each first `up`



def known_instances(project: Project, environ: Mapping[str, str]) -> Known:
    """What the state store knows of the app's instances, for resolving and checking. Reads only.

    The instances are the PR and CI ones that still run; the data paths are every
    instance's, as recorded at its first `up`. A SQLite store is read without SQLAlchemy
    (state/records.py), so `plan` and `render` do not load it (#11).
    """
    from envplane.state import records

    alive, paths = [], {}
    for row in records.recorded(project.root, project.app, environ.get("ENVPLANE_STATE_URL")):
        instance = Instance.from_id(row.env, row.instance)
        if row.data_path is not None:
            paths[instance] = row.data_path
        if row.status in ("down", records.PURGED, records.PARTIAL):
            continue
        if instance.pr is not None or instance.run is not None:
            alive.append(instance)
    return Known(tuple(alive), paths)

def load_checked(
    spec_path: Path,
    environ: Mapping[str, str],
    env: str | None,
    pr: int | None = None,
    run: str | None = None,
    known: Callable[[Project], Known] = lambda project: Known(),
) -> tuple[Project, Target]:
    """What `plan` and `render` start with: the spec loaded and one instance resolved and
    checked against the others (`known` reads what the state store knows of them)."""
    project = open_project(spec_path, environ)
    return project, resolve_checked(project, default_env(environ, env), pr, run, known(project))


def resolve_checked(
    project: Project,
    env: str,
    pr: int | None = None,
    run: str | None = None,
    known: Known = Known(),
    reference: Project | None = None,
) -> Target:
    """Resolve one instance and check it against every other instance on the ladder.

    The others are the spec's single-instance envs plus `known.instances` (e.g. PR
    instances from the state store), each with its recorded data path. An env that fails
    to resolve on its own is left to its own plan. With `reference` (the server's spec when
    `project` is a PR's), its instances are checked too: a PR's spec cannot move its
    preview onto staging's data or secrets.
    """
    target = resolve(project, env, pr, run, known.data_paths)
    others = [t for t in _others(project, target, known) if t is not None]
    if reference is not None:
        others += [t for t in _others(reference, target, known) if t is not None]
        _same_engine(project, reference, target)
    isolation.check(target, others, project.doc)
    return target


def _same_engine(project: Project, reference: Project, target: Target) -> None:
    """A PR's spec cannot send its preview to another runtime, cluster, host, servers,
    registry or secret store than the server's spec names (any of them could be
    production's, or the PR author's)."""
    theirs = reference.envs.get(target.env.name)
    if theirs is None:
        return
    # servers: names the variables holding admin URLs and given S3 keys: a PR could else
    # provision its preview on production's servers or hand its containers a key of staging.
    # backup: where the preview's data and secrets go, and to whose age key.
    for key in ("runtime", "kubernetes", "servers", "backup"):
        if _env_setting(reference, target.env.name, key) != _env_setting(project, target.env.name, key):
            raise SpecError([project.doc.problem(
                ("environments", target.env.name, key),
                f"env {target.env.name}'s {key} differs from the server's spec",
                "a pull request cannot move its preview to another runtime, cluster, servers or "
                "backup store; "
                "change it in the server's envplane.yaml")])
    # registry: releases log in with the registry's credentials from the secret store;
    # secret_store: where the preview's generated passwords are written; backup: as above.
    for key in ("registry", "secret_store", "backup"):
        if getattr(reference.spec, key) != getattr(project.spec, key):
            raise SpecError([project.doc.problem(
                (key,), f"{key} differs from the server's spec",
                "a pull request cannot send credentials or backups to another registry or store; "
                "change it in the server's envplane.yaml")])
    from envplane.hosts.config import engine_for, entry_for

    # The engine as the server's spec makes it (both specs resolve files from the server's
    # folder): a PR's hosts: could else send its preview, its secrets and credentials to any
    # host, with any key file on this machine, or point it at other servers.
    if engine_for(reference.spec, reference.root, theirs) != target.engine:
        found = entry_for(project.spec, target.env)
        raise SpecError([project.doc.problem(
            ("hosts", found[0]) if found else ("hosts",),
            f"env {target.env.name}'s host differs from the server's spec",
            "a pull request cannot move its preview to another host, key or servers; change "
            "hosts: in the server's envplane.yaml")])


def _env_setting(project: Project, env: str, key: str) -> object:
    """The env's setting as resolved (with the ladder's defaults), or as written in its
    spec for the keys resolving leaves in the spec (backup)."""
    if key == "backup":
        written = project.spec.environments.get(env)
        return written.backup if written else None
    return getattr(project.envs[env], key)


def resolve_existing(
    project: Project, env: str, pr: int | None = None, run: str | None = None, known: Known = Known()
) -> Target:
    """An instance to remove (down, purge, gc): checked, with the data path recorded at its
    first `up` (else the spec's), never DATA_PATH from the shell.

    A DATA_PATH that names another folder is an error, not a silent choice between two.
    """
    shell = project.environ.get("DATA_PATH") or None
    target = resolve_checked(_without_data_path(project), env, pr, run, known)
    if shell is not None and PurePosixPath(shell) != PurePosixPath(target.data_path):
        raise UsageError(
            f"DATA_PATH={shell} is not the data path of {target.env.name} {target.id} ({target.data_path})",
            "unset DATA_PATH: removing an instance uses the data path recorded at its first `up`")
    return target


def _without_data_path(project: Project) -> Project:
    return replace(project, environ={k: v for k, v in project.environ.items() if k != "DATA_PATH"})


def _others(project: Project, target: Target, known: Known) -> Iterable[Target | None]:
    # DATA_PATH in the environment names the data path of the instance at hand (seed 000
    # §3.3); the other instances keep their own.
    project = _without_data_path(project)
    for name, cfg in project.envs.items():
        if cfg.instances == "one" and name != target.env.name:
            yield _try_resolve(project, known, name)
    for inst in known.instances:
        if inst != target.instance:
            yield _try_resolve(project, known, inst.env, inst.pr, inst.run)


def _try_resolve(project: Project, known: Known, env: str, pr: int | None = None,
                 run: str | None = None) -> Target | None:
    try:
        return resolve(project, env, pr, run, known.data_paths)
    except (SpecError, UsageError):
        return None


def init_spec(spec_path: Path, compose: Path | None, app: str, domain: str, force: bool,
              environ: Mapping[str, str]) -> str:
    """Guess a spec from a Compose file and write it; refuses to overwrite without force.

    The Compose file is read as `docker compose config` reads it: with the shell's
    variables and the `.env` beside the spec.
    """
    from envplane import init
    from envplane.compose.dotenv import read_dotenv
    from envplane.compose.load import build_model, read_compose_files
    from envplane.spec.models import DOMAIN, NAME_RULE, valid_name

    if not valid_name(app):
        raise UsageError(f"app name {app!r} is not valid", f"use {NAME_RULE}: --app {init.app_name(app)}")
    if not DOMAIN.match(domain):
        raise UsageError(f"domain {domain!r} is not valid", "use a lowercase DNS name")
    if spec_path.exists() and not force:
        raise UsageError(f"{spec_path} exists already", "pass --force to overwrite it")
    root = spec_path.resolve().parent
    compose = compose or _find_compose(root)
    docs = read_compose_files([compose.resolve()])
    lookup = ChainMap(dict(environ), read_dotenv(root / ".env", environ))
    model, _ = build_model(docs, lookup, ())
    relative = os.path.relpath(compose.resolve(), root)
    uses = host_uses(model.services, compose.resolve().parent.as_posix())
    text = init.spec_text(app, domain, relative, init.guess(model.services), uses)
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
    check_split(target, project.doc)
    if target.env.runtime == "kubernetes":
        from envplane.kubernetes.render import manifests

        manifests(project, target)  # refuses what does not map (file:line) before anything runs
    if target.env.runtime == "swarm":
        from envplane.swarm.plan import check

        check(project, target)  # the same, for a stack
    registry = project.spec.registry.address if project.spec.registry else None
    return plan_up(target, project.root, observed, build, project.spec.hooks, registry)


def render_text(project: Project, target: Target) -> str:
    """The file `up` writes: it names the instance's env files, never a value in them."""
    base = project.compose[0].file.parent
    files = env_files(project.root, target)
    return to_yaml(render(target, base, files, all(Path(f).exists() for f in files.values())))


def stack_text(project: Project, target: Target) -> str:
    """The instance as a Swarm stack file, with its images and secrets as named in the spec
    (`up` pins image IDs and names each secret by its content)."""
    from envplane.swarm.plan import check
    from envplane.swarm.render import instance_stack

    check(project, target)
    return to_yaml(instance_stack(project, target))


@dataclass(frozen=True)
class EnvRow:
    env: EnvConfig
    example: Target | None
    error: str | None


def env_matrix(project: Project) -> list[EnvRow]:
    """One row per env, resolved for an example instance (PR 123, CI run 456)."""
    project = _without_data_path(project)  # the ladder's paths; DATA_PATH names one instance's
    rows = []
    for name, cfg in project.envs.items():
        pr = 123 if cfg.instances == "per-pr" else None
        run = "456" if cfg.instances == "per-run" else None
        try:
            rows.append(EnvRow(cfg, resolve(project, name, pr, run), None))
        except (SpecError, UsageError) as exc:
            rows.append(EnvRow(cfg, None, str(exc)))
    return rows


def env_row_dict(row: EnvRow) -> dict[str, object]:
    """One env as `envplane envs --json` shows it (with an example instance's names)."""
    cfg = row.env
    base: dict[str, object] = {
        "env": cfg.name,
        "runtime": cfg.runtime,
        "instances": cfg.instances,
        "host": cfg.host,
        "lifecycle": cfg.lifecycle,
        "routing": cfg.routing,
        "ttl": cfg.ttl,
        "builtin": cfg.builtin,
        "error": row.error,
    }
    if row.example is not None:
        ex = row.example
        base.update(
            example_instance=ex.id,
            suffix=ex.variables["ENV_SUFFIX"],
            domain_suffix=ex.variables["ENV_DOMAIN_SUFFIX"],
            domain=ex.domain,
            data_path=ex.data_path,
            secrets_prefix=ex.secrets_prefix,
            project=ex.project,
            database=ex.database,
            bucket=ex.bucket,
            redis_prefix=ex.redis_prefix,
            ports={
                s.name: [{"target": p.target, "published": p.published} for p in s.ports]
                for s in ex.services
            },
        )
    return base


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
                "stateful": s.stateful,
                "coloured": coloured_service(target, s),
                "why": s.stateful_reason,
            }
            for s in target.services
        ],
        "warnings": list(target.warnings),
        **_kubernetes_fields(target),
    }


def _kubernetes_fields(target: Target) -> dict[str, Any]:
    if target.env.runtime != "kubernetes":
        return {}
    from envplane.kubernetes.convert import identity

    return {"namespace": identity(target)[0], "context": target.env.kubernetes.context}


def coloured_service(target: Target, service: ServiceTarget) -> bool:
    """Whether blue-green runs the service once per colour (else once per instance)."""
    return target.env.strategy == "blue-green" and target.env.runtime == "compose" and not service.stateful


def plan_dict(plan: Plan) -> dict[str, Any]:
    return {
        "target": target_dict(plan.target),
        "steps": [s.as_dict() for s in plan.steps],
        "changes": plan.changes,
    }

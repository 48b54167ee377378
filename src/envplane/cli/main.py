"""The envplane command line. Parses, calls envplane.actions, formats; nothing more."""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated

import typer

from envplane import __version__, actions
from envplane.cli import output
from envplane.cli.output import out, print_json, table
from envplane.errors import EnvplaneError
from envplane.plan import Observed
from envplane.target import Target

app = typer.Typer(
    name="envplane",
    help="Run one app on every rung of the ladder: local, docker, ci, test (per PR), "
    "staging, production, dr.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

SpecOpt = Annotated[
    Path | None,
    typer.Option("--spec", "-f", help="Path to envplane.yaml (default: ./envplane.yaml).",
                 show_default=False),
]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print machine-readable JSON.")]
EnvArg = Annotated[
    str | None,
    typer.Argument(help="Environment (default: $DEPLOY_ENV).", show_default=False),
]
PrOpt = Annotated[int | None, typer.Option("--pr", help="Pull request number (env test).")]
RunOpt = Annotated[str | None, typer.Option("--run", help="CI run id (env ci).")]


@dataclass
class Options:
    spec: Path
    json: bool
    debug: bool


def _options(ctx: typer.Context, spec: Path | None, as_json: bool) -> Options:
    base: Options = ctx.obj
    return Options(spec=spec or base.spec, json=as_json or base.json, debug=base.debug)


@app.callback()
def main(
    ctx: typer.Context,
    spec: SpecOpt = None,
    as_json: JsonOpt = False,
    debug: Annotated[bool, typer.Option("--debug", help="Show tracebacks.")] = False,
) -> None:
    ctx.obj = Options(spec=spec or Path("envplane.yaml"), json=as_json, debug=debug)


@app.command()
def version() -> None:
    """Print the envplane version."""
    out.print(__version__)


@app.command()
def envs(ctx: typer.Context, spec: SpecOpt = None, as_json: JsonOpt = False) -> None:
    """Print the environment matrix of this spec (seed 000's tables)."""
    opts = _options(ctx, spec, as_json)
    project = actions.open_project(opts.spec, os.environ)
    rows = actions.env_matrix(project)
    if opts.json:
        print_json([_env_row_dict(r) for r in rows])
        return
    t = table(
        f"{project.app}: environments",
        ["env", "runtime", "instances", "suffix", "domain", "data path", "secrets path",
         "host", "ports", "lifecycle"],
    )
    for row in rows:
        cfg, ex = row.env, row.example
        if ex is None:
            t.add_row(cfg.name, cfg.runtime, cfg.instances, "", "", "", "", cfg.host, "",
                      f"[red]{row.error}[/]")
            continue
        t.add_row(
            cfg.name,
            cfg.runtime,
            _instances(cfg.instances),
            ex.variables["ENV_SUFFIX"] or "(none)",
            ex.domain or "(none)",
            ex.data_path,
            ex.secrets_prefix + "/{service}",
            cfg.host,
            _ports(ex),
            cfg.lifecycle + (f", TTL {cfg.ttl}" if cfg.ttl else ""),
        )
    out.print(t)
    out.print("[dim]test is shown for PR 123 and ci for run 456.[/]")


def _instances(kind: str) -> str:
    return {"one": "one", "per-pr": "one per PR", "per-run": "one per CI run"}[kind]


def _ports(target: Target) -> str:
    published = [
        f"{p.source}→{p.published}" if p.source != p.published else str(p.published)
        for s in target.services
        for p in s.ports
        if p.published is not None
    ]
    if target.env.port_mode == "ephemeral":
        return "picked by the engine"
    return ", ".join(published) or "(none)"


def _env_row_dict(row: actions.EnvRow) -> dict[str, object]:
    cfg = row.env
    base: dict[str, object] = {
        "env": cfg.name,
        "runtime": cfg.runtime,
        "instances": cfg.instances,
        "host": cfg.host,
        "lifecycle": cfg.lifecycle,
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


@app.command()
def plan(
    ctx: typer.Context,
    env: EnvArg = None,
    pr: PrOpt = None,
    run: RunOpt = None,
    spec: SpecOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Show the target and the steps `envplane up` would run. Changes nothing."""
    opts = _options(ctx, spec, as_json)
    project, target = _checked_target(opts, env, pr, run)
    observed, notes = _observe(project, target)
    the_plan = actions.plan(project, target, observed)
    if opts.json:
        print_json({**actions.plan_dict(the_plan), "notes": notes})
        return
    for note in notes:
        output.err.print(f"[yellow]note:[/] {note}")
    _print_target(target)
    t = table(f"plan: {the_plan.changes} change(s)", ["#", "step", "action", "what"])
    for index, step in enumerate(the_plan.steps, 1):
        action = {"create": "[green]create[/]", "run": "[cyan]run[/]", "check": "check",
                  "noop": "[dim]no-op[/]"}[step.action]
        what = step.description + (f" [dim]({step.reason})[/]" if step.reason else "")
        t.add_row(str(index), step.kind, action, what)
    out.print(t)


def _checked_target(
    opts: Options, env: str | None, pr: int | None, run: str | None
) -> tuple[actions.Project, Target]:
    """Load the spec and resolve one instance, checked against every other one known."""
    from envplane.lifecycle import known_instances  # reads the state store only if it exists

    project = actions.open_project(opts.spec, os.environ)
    env_name = actions.default_env(os.environ, env)
    known = known_instances(project, os.environ)
    return project, actions.resolve_checked(project, env_name, pr, run, known)


def _observe(project: actions.Project, target: Target) -> tuple[Observed | None, list[str]]:
    """What of the instance's resources exists, when the spec declares any (read-only)."""
    if not (target.database or target.bucket or target.redis_prefix):
        return None, []
    from envplane.provision import Servers, observe

    keys, notes = observe(target, Servers.for_target(target, os.environ), project.root, os.environ)
    return Observed(keys), notes


def _print_target(target: Target) -> None:
    t = table(f"{target.app} · {target.env.name} · {target.id}", ["", ""])
    t.show_header = False
    rows = [
        ("runtime", f"{target.env.runtime} (host group {target.env.host})"),
        ("compose project", target.project),
        ("domain", target.domain or "(none)"),
        ("data path", target.data_path),
        ("secrets", target.secrets_prefix + "/{service}"),
        ("database / role", f"{target.database} / {target.role}" if target.database else "(none)"),
        ("bucket", target.bucket or "(none)"),
        ("redis prefix", target.redis_prefix or "(none)"),
        ("networks", ", ".join(target.networks.values())),
        ("volumes", ", ".join(target.volumes.values()) or "(none)"),
    ]
    for service in target.services:
        ports = ", ".join(
            f"{p.published}→{p.target}" for p in service.ports if p.published is not None
        )
        desc = service.container_name or "(scaled)"
        if ports:
            desc += f"  ports {ports}"
        if service.url:
            desc += f"  {service.url}"
        rows.append((f"service {service.name}", desc))
    for key, value in rows:
        t.add_row(f"[bold]{key}[/]", value)
    out.print(t)
    for warning in target.warnings:
        output.err.print(f"[yellow]warning:[/] {warning}")


@app.command()
def render(
    ctx: typer.Context,
    env: EnvArg = None,
    pr: PrOpt = None,
    run: RunOpt = None,
    output_file: Annotated[
        str | None, typer.Option("--output", "-o", help="Write to FILE ('-' for stdout).")
    ] = None,
    spec: SpecOpt = None,
) -> None:
    """Write the Compose file of one env instance (stdout by default)."""
    project, target = _checked_target(_options(ctx, spec, False), env, pr, run)
    text = actions.render_text(project, target)
    for warning in target.warnings:
        output.err.print(f"[yellow]warning:[/] {warning}")
    if output_file in (None, "-"):
        sys.stdout.write(text)
        return
    path = Path(output_file)
    try:
        path.write_text(text, encoding="utf-8")
    except OSError as exc:
        raise EnvplaneError(f"cannot write {path}: {exc.strerror}") from None
    output.err.print(f"wrote {path}")


@app.command()
def init(
    ctx: typer.Context,
    compose: Annotated[
        Path | None, typer.Option("--compose", help="The app's Compose file.")
    ] = None,
    app_name: Annotated[str | None, typer.Option("--app", help="App name (a-z, 0-9, -).")] = None,
    domain: Annotated[str | None, typer.Option("--domain", help="Base domain.")] = None,
    force: Annotated[bool, typer.Option("--force", help="Overwrite an existing spec.")] = False,
    spec: SpecOpt = None,
) -> None:
    """Write a starter envplane.yaml from an existing Compose file, saying what it guessed."""
    opts = _options(ctx, spec, False)
    target = opts.spec if opts.spec.suffix else opts.spec / "envplane.yaml"
    text = actions.init_spec(
        target,
        compose=compose,
        app=app_name or _ask("App name", _default_app(target)),
        domain=domain or _ask("Base domain", "example.com"),
        force=force,
    )
    output.err.print(text.rstrip())
    output.err.print(f"\nwrote {target}; next: envplane envs, envplane plan staging")


def _ask(question: str, default: str) -> str:
    # Scripts and CI pass the flags; only a person at a terminal is asked.
    if sys.stdin.isatty():
        return str(typer.prompt(question, default=default))
    return default


def _default_app(spec_path: Path) -> str:
    import re

    name = re.sub(r"[^a-z0-9-]+", "-", spec_path.resolve().parent.name.lower()).strip("-")
    return name if len(name) >= 2 and name[0].isalpha() else "app"


# The commands that drive a runtime live in their own module; importing it registers them.
from envplane.cli import (  # noqa: E402, F401
    audit_commands,
    platform_commands,
    preview_commands,
    proxy_commands,
    release_commands,
    run_commands,
    secrets_commands,
)


def run() -> None:
    """Console entry point: run the app, turning EnvplaneError into one clear message."""
    debug = "--debug" in sys.argv
    as_json = "--json" in sys.argv
    try:
        app()  # standalone: Typer reports its own usage errors with exit code 2
    except EnvplaneError as exc:
        if debug:
            raise
        sys.exit(output.report_error(exc, as_json))
    except KeyboardInterrupt:
        sys.exit(130)
    except Exception as exc:
        if debug:
            raise
        output.err.print(f"[bold red]internal error:[/] {type(exc).__name__}: {exc}")
        output.err.print("  [dim]hint:[/] run again with --debug for the traceback, and report it")
        sys.exit(1)

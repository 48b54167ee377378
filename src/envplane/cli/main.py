"""The envplane command line. Parses, calls envplane.actions, formats; nothing more."""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.markup import escape
from typer.core import TyperGroup

from envplane import __version__
from envplane.cli import output
from envplane.cli.output import out, print_json, table
from envplane.errors import EnvplaneError, UsageError
from envplane.private import write_in_place
from envplane.secret import mask_known, masking

if TYPE_CHECKING:
    from envplane import actions
    from envplane.target import ServiceTarget, Target

# Cold start (issue 11): `envplane --help` and `version` load only this module, Typer and the
# command modules. The spec models, Compose merge, YAML, backends and the state store are
# imported inside the commands that use them; tests/unit/test_cli_imports.py holds that line.


class Stopped(Exception):
    """Ctrl-C, carried past Typer, which would turn the KeyboardInterrupt into a silent exit
    130; `run()` says what it stopped."""

    def __init__(self, interrupt: KeyboardInterrupt) -> None:
        super().__init__(str(interrupt))
        self.interrupt = interrupt


class _Commands(TyperGroup):
    def invoke(self, ctx: Any) -> Any:  # typer's own click: its Context type is not public
        try:
            return super().invoke(ctx)
        except KeyboardInterrupt as exc:
            raise Stopped(exc) from exc


app = typer.Typer(
    cls=_Commands,
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


def _flags_take_no_value() -> None:
    """Typer's help prints a type after every option, `--json <bool>` included; a flag takes
    no value, so it shows none (options that take one keep theirs: `--timeout <float>`)."""
    from typer.core import TyperOption

    shown = getattr(TyperOption, "display_type_rich", None)
    if shown is None:  # a Typer that never printed one
        return

    def display_type_rich(self: TyperOption, ctx: typer.Context) -> str | None:
        return None if self.is_flag else shown(self, ctx)

    setattr(TyperOption, "display_type_rich", display_type_rich)  # noqa: B010


_flags_take_no_value()


@dataclass
class Options:
    spec: Path
    json: bool
    debug: bool


def _options(ctx: typer.Context, spec: Path | None, as_json: bool) -> Options:
    base: Options = ctx.obj
    return Options(spec=spec or base.spec, json=as_json or base.json, debug=base.debug)


def _print_version(asked: bool) -> None:
    if asked:
        out.print(__version__)
        raise typer.Exit()


@app.callback()
def main(
    ctx: typer.Context,
    spec: SpecOpt = None,
    as_json: JsonOpt = False,
    debug: Annotated[bool, typer.Option("--debug", help="Show tracebacks.")] = False,
    version: Annotated[bool, typer.Option("--version", help="Print the envplane version and exit.",
                                          is_eager=True, callback=_print_version)] = False,
) -> None:
    ctx.obj = Options(spec=spec or Path("envplane.yaml"), json=as_json, debug=debug)


@app.command()
def version() -> None:
    """Print the envplane version."""
    out.print(__version__)


@app.command()
def envs(ctx: typer.Context, spec: SpecOpt = None, as_json: JsonOpt = False) -> None:
    """Print every environment of this spec: names, domain, data path, secrets, ports."""
    from envplane import actions

    opts = _options(ctx, spec, as_json)
    project = actions.open_project(opts.spec, os.environ)
    rows = actions.env_matrix(project)
    if opts.json:
        print_json([actions.env_row_dict(r) for r in rows])
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
            _domain(ex),
            ex.data_path,
            ex.secrets_prefix + "/{service}",
            cfg.host,
            _ports(ex),
            cfg.lifecycle + (f", TTL {cfg.ttl}" if cfg.ttl else ""),
        )
    out.print(t)
    out.print("[dim]test is shown for PR 123 and ci for run 456.[/]")


def _domain(target: Target) -> str:
    """The domain, and what routes it when that is not envplane's Caddy (README: Routing)."""
    if target.domain is None:
        return "(none)"
    if target.env.routing == "caddy" or target.env.runtime == "process":
        return target.domain
    return f"{target.domain} ({'by Traefik' if target.env.routing == 'traefik' else 'not routed'})"


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
    from envplane import actions
    from envplane.service import plans

    opts = _options(ctx, spec, as_json)
    project = actions.open_project(opts.spec, os.environ)
    planned = plans.plan(project, actions.default_env(os.environ, env), pr, run)
    target, the_plan, notes = planned.target, planned.plan, planned.notes
    if opts.json:
        print_json(planned.as_dict())
        return
    for note in notes:
        output.err.print(f"[yellow]note:[/] {note}")
    _print_target(target)
    t = table(f"plan: {the_plan.changes} change(s)", ["#", "phase", "step", "action", "what"])
    phase = ""
    for index, step in enumerate(the_plan.steps, 1):
        action = {"create": "[green]create[/]", "run": "[cyan]run[/]", "check": "check",
                  "noop": "[dim]no-op[/]"}[step.action]
        what = escape(step.description) + (f" [dim]({escape(step.reason)})[/]" if step.reason else "")
        shown = {"preflight": "pre-flight", "apply": "apply"}[step.phase] if step.phase != phase else ""
        if shown and phase:
            t.add_section()  # nothing below this line runs until every check above has passed
        phase = step.phase
        t.add_row(str(index), shown, step.kind, action, what)
    out.print(t)


def _checked_target(
    opts: Options, env: str | None, pr: int | None, run: str | None
) -> tuple[actions.Project, Target]:
    """Load the spec and resolve one instance, checked against every other one known."""
    from envplane import actions
    from envplane.service import plans

    return actions.load_checked(opts.spec, os.environ, env, pr, run, plans.known)


def _print_target(target: Target) -> None:
    t = table(f"{target.app} · {target.env.name} · {target.id}", ["", ""])
    t.show_header = False
    rows = [
        ("runtime", f"{target.env.runtime} (host group {target.env.host})"),
        *_kubernetes_rows(target),
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
        desc += _colouring(target, service)
        rows.append((f"service {service.name}", desc))
    for key, value in rows:
        t.add_row(f"[bold]{key}[/]", value)
    out.print(t)
    for warning in target.warnings:
        output.err.print(f"[yellow]warning:[/] {warning}")


def _kubernetes_rows(target: Target) -> list[tuple[str, str]]:
    if target.env.runtime != "kubernetes":
        return []
    from envplane.kubernetes.convert import identity

    return [("namespace", f"{identity(target)[0]} (context {target.env.kubernetes.context})")]


def _colouring(target: Target, service: ServiceTarget) -> str:
    """How a deploy runs the service, and why (stateful ones run once per instance)."""
    from envplane import actions

    if actions.coloured_service(target, service):
        return f"\n  [cyan]coloured[/] (a copy per blue-green colour): {service.stateful_reason}"
    if service.stateful:
        once = ", not coloured" if target.env.strategy == "blue-green" else ""
        return f"\n  [magenta]stateful[/] (runs once{once}): {service.stateful_reason}"
    return ""


@app.command()
def render(
    ctx: typer.Context,
    env: EnvArg = None,
    pr: PrOpt = None,
    run: RunOpt = None,
    output_file: Annotated[
        str | None, typer.Option("--output", "-o", help="Write to FILE ('-' for stdout); a folder for "
                                 "kubernetes (one file per kind and service) and helm.")
    ] = None,
    fmt: Annotated[str, typer.Option("--format", help="compose, swarm (a stack file), kubernetes (manifests) "
                                     "or helm (a chart with values per env).")] = "compose",
    include_secrets: Annotated[bool, typer.Option(
        "--include-secrets", help="kubernetes: also write the instance's Secrets with their values "
        "(by default they are made at apply time and never written).")] = False,
    spec: SpecOpt = None,
) -> None:
    """Write one env instance as a Compose file, a Swarm stack file, Kubernetes manifests, or the
    app's Helm chart."""
    from envplane import actions

    if fmt not in ("compose", "swarm", "kubernetes", "helm"):
        raise UsageError(f"unknown format {fmt!r}", "use --format compose, swarm, kubernetes or helm")
    if include_secrets and fmt != "kubernetes":
        raise UsageError("--include-secrets is for --format kubernetes",
                         "a Compose file names env files, and a chart names Secrets; neither holds values")
    opts = _options(ctx, spec, False)
    if fmt == "helm":
        _render_chart(opts, env, pr, run, output_file)
        return
    project, target = _checked_target(opts, env, pr, run)
    if fmt == "kubernetes":
        _render_manifests(project, target, output_file, include_secrets)
        return
    text = actions.render_text(project, target) if fmt == "compose" else actions.stack_text(project, target)
    for warning in target.warnings:
        output.err.print(f"[yellow]warning:[/] {warning}")
    if output_file in (None, "-"):
        sys.stdout.write(text)
        return
    path = Path(output_file)
    try:
        write_in_place(path, text)
    except OSError as exc:
        raise EnvplaneError(f"cannot write {path}: {exc.strerror}") from None
    output.err.print(f"wrote {path}")


def _render_manifests(project: actions.Project, target: Target, output_file: str | None,
                      include_secrets: bool) -> None:
    from envplane.kubernetes import render as kube

    found = kube.manifests(project, target)
    secrets = kube.stored_secrets(project, target, found, os.environ) if include_secrets else None
    for warning in found.warnings:
        output.err.print(f"[yellow]warning:[/] {escape(warning)}")
    if output_file in (None, "-"):
        sys.stdout.write(kube.stream(found, secrets))
        return
    folder = Path(output_file)
    try:
        written = kube.write_dir(folder, kube.manifest_files(found, secrets))
    except OSError as exc:
        raise EnvplaneError(f"cannot write {folder}: {exc.strerror}") from None
    output.err.print(f"wrote {len(written)} files to {folder} (namespace {found.namespace}); apply them with "
                     f"`kubectl apply --server-side -f {folder}`")


def _render_chart(opts: Options, env: str | None, pr: int | None, run: str | None,
                  output_file: str | None) -> None:
    from envplane import actions
    from envplane.kubernetes import render as kube

    if output_file in (None, "-"):
        raise UsageError("a chart is a folder of files", "name it: --format helm -o chart/")
    project = actions.open_project(opts.spec, os.environ)
    files = kube.chart_files(project)
    folder = Path(output_file)
    try:
        kube.write_chart(folder, files)
    except OSError as exc:
        raise EnvplaneError(f"cannot write {folder}: {exc.strerror}") from None
    output.err.print(f"wrote the chart of {project.app} to {folder}: Chart.yaml, values.yaml, "
                     + ", ".join(f"values-{name}.yaml" for name in project.envs))
    env = env or os.environ.get("DEPLOY_ENV")
    if env:
        from envplane.kubernetes.convert import identity

        target = actions.resolve(project, env, pr, run)
        ns, _ = identity(target)
        extra = f" --set pr={pr}" if target.instance.pr else f" --set run={target.instance.run}" \
            if target.instance.run else ""
        output.err.print(f"install {env} {target.id}: helm install {ns} {folder} --namespace {ns} "
                         f"--create-namespace --values {folder}/values-{env}.yaml{extra}")


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
    from envplane import actions
    from envplane.init import app_name as valid_app_name

    opts = _options(ctx, spec, False)
    target = opts.spec if opts.spec.suffix else opts.spec / "envplane.yaml"
    if app_name is None:
        folder = target.resolve().parent.name
        app_name = _ask("App name", valid_app_name(folder))
        if not sys.stdin.isatty() and app_name != folder:
            output.err.print(f"app name {app_name} (from the folder {escape(folder)})")
    text = actions.init_spec(
        target,
        compose=compose,
        app=app_name,
        domain=domain or _ask("Base domain", "example.com"),
        force=force,
        environ=os.environ,
    )
    output.err.print(escape(text.rstrip()))  # a YAML list [/srv/x] is not markup
    output.err.print(f"\nwrote {target}; next: envplane envs, envplane plan staging")


def _ask(question: str, default: str) -> str:
    # Scripts and CI pass the flags; only a person at a terminal is asked.
    if sys.stdin.isatty():
        return str(typer.prompt(question, default=default))
    return default


# The commands that drive a runtime live in their own module; importing it registers them.
from envplane.cli import (  # noqa: E402, F401
    audit_commands,
    ci_commands,
    dr_commands,
    mcp_commands,
    platform_commands,
    preview_commands,
    proxy_commands,
    release_commands,
    remote_commands,
    run_commands,
    secrets_commands,
    serve_commands,
    server_commands,
)


def run() -> None:
    """Console entry point: run the app, turning EnvplaneError into one clear message."""
    debug = "--debug" in sys.argv
    as_json = "--json" in sys.argv
    with masking():  # every secret this command meets is masked in what it reports
        try:
            app()  # standalone: Typer reports its own usage errors with exit code 2
        except EnvplaneError as exc:
            if debug:
                raise
            sys.exit(output.report_error(exc, as_json))
        except Stopped as exc:
            sys.exit(output.report_interrupt(exc.interrupt, as_json))
        except KeyboardInterrupt as exc:  # before or after a command ran
            sys.exit(output.report_interrupt(exc, as_json))
        except Exception as exc:
            if debug:
                raise
            output.err.print(f"[bold red]internal error:[/] {type(exc).__name__}: "
                             f"{escape(mask_known(str(exc)))}")
            output.err.print("  [dim]hint:[/] run again with --debug for the traceback, and report it")
            sys.exit(1)

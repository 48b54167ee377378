"""`up`, `down`, `status`, `logs`: the commands that touch a runtime."""

from __future__ import annotations

import os
import signal
import sys
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.markup import escape

from envplane import actions
from envplane.backends.runtime.compose import ComposeRuntime, inspect_existing
from envplane.backends.runtime.facts import ContainerFact
from envplane.backends.runtime.health import checks_for, wait_healthy
from envplane.backends.runtime.process import ProcessSupervisor
from envplane.cli.main import EnvArg, JsonOpt, PrOpt, RunOpt, SpecOpt, _options, app
from envplane.cli.output import err, out, print_json, table
from envplane.commands import docker as docker_cmd
from envplane.errors import UsageError
from envplane.plan import Step
from envplane.release.colours import LABEL_COLOUR
from envplane.run import stream
from envplane.secret import Secret
from envplane.target import LABEL_ENV, LABEL_INSTANCE, LABEL_SERVICE, Target, resolve

if TYPE_CHECKING:  # the state store loads SQLAlchemy: only commands that use it pay for it
    from envplane import lifecycle
    from envplane.apply import StepHook

TimeoutOpt = Annotated[
    float, typer.Option("--timeout", help="Seconds each service may take to become healthy.")
]


def _step_printer(as_json: bool) -> StepHook:
    marks = {"ok": "[green]✓[/]", "skip": "[dim]–[/]", "failed": "[red]✗[/]"}

    def hook(step: Step, state: str, seconds: float) -> None:
        if as_json or state == "start":
            return
        err.print(f"{marks[state]} {escape(step.description)} [dim]{seconds:.1f}s[/]")

    return hook


NoWaitOpt = Annotated[
    bool, typer.Option("--no-wait", help="Fail at once when another operation holds the instance.")
]
RefOpt = Annotated[str | None, typer.Option("--ref", help="Git ref being deployed (recorded).")]
BuildOpt = Annotated[bool, typer.Option("--build", help="Rebuild images first (else only missing ones).")]


def _session(project: actions.Project, no_wait: bool) -> lifecycle.Session:
    from envplane import lifecycle

    session = lifecycle.open_session(project)
    session.wait = not no_wait
    session.on_wait = lambda holder: err.print(
        f"[yellow]waiting:[/] {escape(holder.describe())} holds this instance")
    return session


@app.command()
def up(
    ctx: typer.Context,
    env: EnvArg = None,
    pr: PrOpt = None,
    run: RunOpt = None,
    ref: RefOpt = None,
    build: BuildOpt = False,
    timeout: TimeoutOpt = 120.0,
    no_wait: NoWaitOpt = False,
    spec: SpecOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Bring an env instance up and wait until every service is healthy."""
    opts = _options(ctx, spec, as_json)
    project = actions.open_project(opts.spec, os.environ)
    do_up(project, actions.default_env(os.environ, env), pr, run, ref, timeout, no_wait, opts.json, build)


def do_up(project: actions.Project, env_name: str, pr: int | None, run: str | None, ref: str | None,
          timeout: float, no_wait: bool, as_json: bool, build: bool = False) -> None:
    from envplane import lifecycle

    known = lifecycle.known_instances(project, os.environ)
    target = actions.resolve_checked(project, env_name, pr, run, known)
    plan = actions.plan(project, target, build=build)
    if target.env.runtime == "process":
        _run_processes(project.root, target, timeout)
        return
    started = time.monotonic()
    outcome = lifecycle.up(_session(project, no_wait), plan, _step_printer(as_json), timeout, ref)
    if as_json:
        print_json({
            "instance": target.id, "project": target.project, "urls": outcome.urls,
            "seconds": round(time.monotonic() - started, 2),
            "steps": [{"kind": s.kind, "state": st, "seconds": round(sec, 2)}
                      for s, st, sec in outcome.steps],
        })
        return
    out.print(f"[bold green]{target.app} {target.id} is up[/] in {time.monotonic() - started:.1f}s")
    _print_addresses(target)


def _print_addresses(target: Target) -> None:
    for service in target.services:
        port = service.public_host_port
        local = f"http://127.0.0.1:{port}" if port else ""
        if service.url or local:
            out.print(f"  {service.name}: {service.url or ''} {local}".rstrip())


def _run_processes(root: Path, target: Target, timeout: float) -> None:
    def printer(service: str, colour: str, line: str) -> None:
        out.print(f"[{colour}]{service:>10} |[/] {escape(line)}")

    Path(target.data_path).mkdir(parents=True, exist_ok=True)
    supervisor = ProcessSupervisor(target, root, printer, resources=_local_resources(root, target))
    stop = threading.Event()

    healthy = threading.Event()

    def on_signal(signum: int, frame: object) -> None:
        stop.set()
        supervisor.stopping.set()
        if not healthy.is_set():
            raise KeyboardInterrupt  # stop waiting for health; `finally` stops the processes

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    supervisor.start()
    try:
        wait_healthy(checks_for(target), lambda: [], timeout)
        healthy.set()
        err.print(f"[bold green]{target.app} {target.id} is up[/] (Ctrl-C stops it)")
        _print_addresses_local(target)
        while not stop.wait(0.5):
            pass
    finally:
        supervisor.stop()
        err.print("stopped")


def _local_resources(root: Path, target: Target) -> dict[str, dict[str, str]]:
    """Env local's embedded resources: a SQLite file and a folder per bucket, no servers."""
    if not (target.database or target.bucket or any(s.secrets for s in target.services)):
        return {}
    from envplane.backends.secrets import open_secret_store
    from envplane.provision import Provisioner, Servers, store_kind

    store = open_secret_store(store_kind(target, os.environ), root, os.environ)
    provisioner = Provisioner(target, Servers(), store, root)
    provisioner.database()
    provisioner.bucket()
    for change in provisioner.changes:
        if change.action != "noop":
            err.print(f"[green]✓[/] {escape(str(change))}")
    # A local process gets its variables in its environment; nothing here is a secret
    # (a SQLite path, a folder), but reveal() keeps the one code path for both kinds.
    return {s.name: {k: v.reveal() if isinstance(v, Secret) else v
                     for k, v in provisioner.variables(s).items()}
            for s in target.services if s.uses or s.secrets}


def _print_addresses_local(target: Target) -> None:
    for service in target.services:
        if service.url:
            err.print(f"  {service.name}: {service.url}")


@app.command()
def down(
    ctx: typer.Context,
    env: EnvArg = None,
    pr: PrOpt = None,
    run: RunOpt = None,
    purge: Annotated[bool, typer.Option("--purge", help="Also remove volumes and the data path.")] = False,
    no_wait: NoWaitOpt = False,
    spec: SpecOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Stop and remove an env instance's containers and networks (only that instance's)."""
    opts = _options(ctx, spec, as_json)
    project = actions.open_project(opts.spec, os.environ)
    do_down(project, actions.default_env(os.environ, env), pr, run, purge, no_wait, opts.json)


def do_down(project: actions.Project, env_name: str, pr: int | None, run: str | None, purge: bool,
            no_wait: bool, as_json: bool) -> None:
    from envplane import lifecycle

    target = resolve(project, env_name, pr, run)
    if target.env.runtime == "process":
        raise UsageError("the local env runs in the foreground of `envplane up local`; stop it there")
    left = lifecycle.down(_session(project, no_wait), target, purge)
    if as_json:
        print_json({"instance": target.id, "purged": purge, "left": {
            "containers": list(left.containers), "networks": list(left.networks),
            "volumes": list(left.volumes)}})
        return
    out.print(f"[bold]{target.app} {target.id} is {'purged' if purge else 'down'}[/]")
    if not left.empty:
        err.print(f"[yellow]warning:[/] left behind: {left}")


@app.command()
def status(
    ctx: typer.Context,
    env: Annotated[str | None, typer.Argument(help="Only this env.", show_default=False)] = None,
    spec: SpecOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """What is running, per env instance, as the engine reports it."""
    opts = _options(ctx, spec, as_json)
    project = actions.open_project(opts.spec, os.environ)
    facts = _all_containers(project.app)
    if env:
        project.env(env)  # an unknown env is a usage error, not an empty table
        facts = [f for f in facts if f.labels.get(LABEL_ENV) == env]
    if opts.json:
        print_json([_fact_dict(f) for f in facts])
        return
    t = table(f"{project.app}: running instances", ["env", "instance", "service", "container",
                                                    "state", "health", "ports"])
    for f in sorted(facts, key=lambda f: (f.labels.get(LABEL_ENV, ""), f.labels.get(LABEL_INSTANCE, ""),
                                          f.service)):
        t.add_row(f.labels.get(LABEL_ENV, "?"), f.labels.get(LABEL_INSTANCE, "?"),
                  f.labels.get(LABEL_SERVICE, f.service), f.name, f.state, f.health or "-",
                  ", ".join(f"{h}→{c}" for c, h, _ in f.ports))
    out.print(t)


def _all_containers(app_name: str) -> list[ContainerFact]:
    from envplane.backends.runtime.facts import parse_inspect, parse_ps_lines
    from envplane.run import run as run_cmd

    ComposeRuntime().check()
    listed = run_cmd(docker_cmd.all_envplane_containers(), what="docker ps").stdout
    ids = parse_ps_lines(listed)
    if not ids:
        return []
    facts = parse_inspect(inspect_existing(ids))
    return [f for f in facts if f.labels.get("envplane.app") == app_name]


def _fact_dict(f: ContainerFact) -> dict[str, object]:
    return {"env": f.labels.get(LABEL_ENV), "instance": f.labels.get(LABEL_INSTANCE),
            "service": f.labels.get(LABEL_SERVICE, f.service), "container": f.name,
            "colour": f.labels.get(LABEL_COLOUR),
            "state": f.state, "health": f.health,
            "ports": [{"target": c, "published": h, "protocol": p} for c, h, p in f.ports]}


@app.command()
def logs(
    ctx: typer.Context,
    env: Annotated[str, typer.Argument(help="Environment.")],
    service: Annotated[str, typer.Argument(help="Service name.")],
    pr: PrOpt = None,
    run: RunOpt = None,
    follow: Annotated[bool, typer.Option("--follow", "-f", help="Keep printing new lines.")] = False,
    spec: SpecOpt = None,
) -> None:
    """Print a service's logs (the last 200 lines; -f to follow)."""
    opts = _options(ctx, spec, False)
    project = actions.open_project(opts.spec, os.environ)
    target = resolve(project, env, pr, run)
    runtime = ComposeRuntime()
    runtime.check()
    matches = [c for c in runtime.containers(target.app, target.id)
               if c.labels.get(LABEL_SERVICE) == service]
    if not matches:
        raise UsageError(f"no container of service {service!r} in {target.app} {target.id}",
                         "is it up? see `envplane status`")
    sys.exit(stream(docker_cmd.logs(matches[0].name, follow), what="docker logs"))


@app.command()
def verify(ctx: typer.Context, as_json: JsonOpt = False) -> None:
    """Prove isolation on this host: every envplane resource has one owner, nothing is shared."""
    from envplane import verify as proof

    opts = _options(ctx, None, as_json)
    ComposeRuntime().check()
    report = proof.analyse(proof.observe())
    if opts.json:
        print_json({"ok": report.ok, "resources": report.resources,
                    "instances": sorted(report.instances),
                    "violations": [{"kind": f.kind, "subject": f.subject, "detail": f.detail}
                                   for f in report.findings]})
    elif report.ok:
        out.print(f"[bold green]isolated:[/] {report.resources} resources of "
                  f"{len(report.instances)} instance(s), nothing shared, all healthy")
    else:
        t = table(f"{len(report.findings)} violation(s)", ["kind", "what", "detail"])
        for f in report.findings:
            t.add_row(f.kind, f.subject, f.detail)
        out.print(t)
    if not report.ok:
        raise typer.Exit(1)

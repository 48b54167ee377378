"""`up`, `down`, `status`, `logs`: the commands that touch a runtime."""

from __future__ import annotations

import os
import signal
import sys
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Annotated, NoReturn, TypeVar

import typer
from rich.markup import escape

from envplane.cli.main import EnvArg, JsonOpt, PrOpt, RunOpt, SpecOpt, _options, app
from envplane.cli.output import err, out, print_json, table
from envplane.cli.progress import Drawer, drawing, finished_only
from envplane.errors import NeedsConfirmation, UsageError
from envplane.events import Event, LogLine, StepStarted, Waiting
from envplane.hosts.engine import LOCAL, Engine

if TYPE_CHECKING:  # loaded by the commands that use them, not by every `envplane` start
    from envplane import actions
    from envplane import verify as proof_module
    from envplane.service.instances import Down, PartialPurge, Up

TimeoutOpt = Annotated[
    float, typer.Option("--timeout", help="Seconds each service may take to become healthy.")
]
NoWaitOpt = Annotated[
    bool, typer.Option("--no-wait", help="Fail at once when another operation holds the instance.")
]
RefOpt = Annotated[str | None, typer.Option("--ref", help="Git ref being deployed (recorded).")]
T = TypeVar("T")
BuildOpt = Annotated[bool, typer.Option("--build", help="Rebuild images first (else only missing ones).")]


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
    from envplane import actions

    opts = _options(ctx, spec, as_json)
    project = actions.open_project(opts.spec, os.environ)
    env_name = actions.default_env(os.environ, env)
    if project.env(env_name).runtime == "process":
        _run_local(project, env_name, timeout)
        return
    do_up(project, env_name, pr, run, ref, timeout, no_wait, opts.json, build)


def do_up(project: actions.Project, env_name: str, pr: int | None, run: str | None, ref: str | None,
          timeout: float, no_wait: bool, as_json: bool, build: bool = False) -> None:
    """`up` of an instance with its progress drawn and its result printed (preview, platform)."""
    from envplane.service import instances

    with drawing(err, as_json) as report:
        done = instances.up(project, env_name, pr, run, ref=ref, build=build, timeout=timeout,
                            wait=not no_wait, report=report)
    print_up(done, as_json)


def print_up(done: Up, as_json: bool) -> None:
    if as_json:
        print_json(done.as_dict())
        return
    out.print(f"[bold green]{done.app} {done.instance} is up[/] in {done.seconds:.1f}s")
    for service, url in done.urls.items():  # where each one answers: see Target.urls
        out.print(f"  {service}: {url}")


def _run_local(project: actions.Project, env: str, timeout: float) -> None:
    """Env local in the foreground: its processes' lines on stdout until Ctrl-C."""
    from envplane.backends.runtime.process import COLOURS
    from envplane.service import instances

    stop = threading.Event()
    colours: dict[str, str] = {}
    drawer = Drawer(err, live=False, every=float("inf"))

    def report(event: Event) -> None:
        if isinstance(event, LogLine):
            colour = colours.setdefault(event.source, COLOURS[len(colours) % len(COLOURS)])
            out.print(f"[{colour}]{event.source:>10} |[/] {escape(event.line)}")
        elif not isinstance(event, StepStarted | Waiting):
            drawer(event)

    def on_signal(signum: int, frame: object) -> None:
        stop.set()  # no crashed process restarts from now on
        raise KeyboardInterrupt  # before they are healthy: stop waiting; after: the run ends

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    try:
        instances.run_local(project, env, stop, timeout=timeout, report=report)
    finally:
        err.print("stopped")


YesOpt = Annotated[bool, typer.Option(
    "--yes", "-y", help="Confirm a purge of staging, production or dr without being asked.")]


@app.command()
def down(
    ctx: typer.Context,
    env: EnvArg = None,
    pr: PrOpt = None,
    run: RunOpt = None,
    purge: Annotated[bool, typer.Option("--purge", help="Also remove volumes and the data path.")] = False,
    no_backup: Annotated[bool, typer.Option("--no-backup", help="Purge staging or production without "
                                            "the final backup taken first.")] = False,
    yes: YesOpt = False,
    no_wait: NoWaitOpt = False,
    spec: SpecOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Stop and remove an env instance's containers and networks (only that instance's)."""
    from envplane import actions

    opts = _options(ctx, spec, as_json)
    project = actions.open_project(opts.spec, os.environ)
    do_down(project, actions.default_env(os.environ, env), pr, run, purge, no_wait, opts.json, yes,
            final_backup=not no_backup)


def do_down(project: actions.Project, env_name: str, pr: int | None, run: str | None, purge: bool,
            no_wait: bool, as_json: bool, yes: bool = False, final_backup: bool = True) -> Down:
    """`down` with its purge confirmed on a terminal and its outcome printed (preview, platform)."""
    from envplane.service import instances

    def attempt(confirmed: bool) -> Down:
        return instances.down(project, env_name, pr, run, purge=purge, yes=confirmed,
                              final_backup=final_backup, wait=not no_wait, report=finished_only(as_json))

    try:
        done = confirming(attempt, yes)
    except instances.PartialPurge as partial:
        print_partial(partial, as_json)
    print_down(done, as_json)
    return done


def confirming(attempt: Callable[[bool], T], yes: bool, ask: bool = True) -> T:
    """Run `attempt(yes)`; when it needs a confirmation, ask on a terminal (unless not `ask`:
    --json) and run it again confirmed."""
    try:
        return attempt(yes)
    except NeedsConfirmation as needed:
        if not ask:
            raise UsageError(needed.message, needed.hint) from None
        ask_on_terminal(needed)
    return attempt(True)


def ask_on_terminal(needed: NeedsConfirmation) -> None:
    """Returns when a person says yes; else a usage error that says why nothing changed."""
    if not sys.stdin.isatty():
        raise UsageError(f"{needed.message}; no terminal to confirm it on", needed.hint) from None
    if not typer.confirm(needed.question, default=False, err=True):
        raise UsageError(needed.declined) from None


def print_partial(partial: PartialPurge, as_json: bool) -> NoReturn:
    """A purge that kept resources: what it did, and exit 1."""
    if not as_json:
        err.print(f"[red]partial:[/] {escape(partial.message)}")
        err.print(f"  hint: {escape(partial.hint)}")
    print_down(partial.done, as_json)
    raise typer.Exit(1)


def print_down(done: Down, as_json: bool) -> None:
    if as_json:
        print_json(done.as_dict())
    elif not done.partial:  # a partial one: its error says what stays
        out.print(f"[bold]{done.app} {done.instance} is {'purged' if done.purge else 'down'}[/]")
    if not done.left.empty and not as_json:
        err.print(f"[yellow]warning:[/] left behind: {done.left}")


@app.command()
def status(
    ctx: typer.Context,
    env: Annotated[str | None, typer.Argument(help="Only this env.", show_default=False)] = None,
    spec: SpecOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """What runs, per env instance and service: its state, its health (tried once as `up`
    checks it), how its last deploy ended, the release it runs and why it is unhealthy (pods
    on Kubernetes), and the instances whose purge was partial."""
    from envplane import actions
    from envplane.service import status as service

    opts = _options(ctx, spec, as_json)
    project = actions.open_project(opts.spec, os.environ)
    if opts.json:
        print_json(service.overview(project, env))
        return
    states, pods, partial = service.everything(project, env)
    if not states and not pods and not partial:
        out.print(f"nothing of {project.app} runs" + (f" in env {env}" if env else ""))
        return
    t = table(f"{project.app}: running instances", ["env", "instance", "service", "container",
                                                    "state", "health", "last deploy", "version", "ports",
                                                    "why"])
    for s in states:
        health = {"healthy": "[green]healthy[/]", "unhealthy": "[red]unhealthy[/]"}.get(s.health, s.health)
        deploy = s.last_deploy or "-"
        if deploy in ("failed", "interrupted"):
            deploy = f"[red]{deploy}[/]"
        t.add_row(s.env, s.instance, s.service, s.container, s.state, health, deploy, s.version or "-",
                  ", ".join(f"{h}→{c}" for c, h, _ in s.ports), escape(s.why))
    for p in pods:
        t.add_row(p.env, p.instance, p.service, f"{p.namespace}/{p.name}", p.phase, f"ready {p.ready}",
                  "-", "-", f"{p.restarts} restart(s)", "")
    for r in partial:  # purged but for resources whose server was missing or down
        t.add_row(r.env, r.instance, "-", "-", f"[red]{r.status}[/]", "-", r.status, "-", "", "")
    out.print(t)
    if partial:
        err.print("[yellow]note:[/] a partial instance kept resources (and their secrets) whose server "
                  "was missing or down: purge it again with `envplane down ENV --purge` once it answers")


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
    """Print a service's logs (the last 200 lines; -f to follow), secret values masked."""
    from envplane import actions
    from envplane.service import logs as service_logs

    opts = _options(ctx, spec, False)
    project = actions.open_project(opts.spec, os.environ)
    for line in service_logs.lines(project, env, service, pr, run, follow=follow):
        sys.stdout.write(line + "\n")
        sys.stdout.flush()  # a follower sees each line as it comes


def _swarm_proof(engine: Engine) -> proof_module.Report | None:
    """On a Swarm manager, the proof across every node and its services (swarm/verify.py)."""
    from envplane import verify as proof
    from envplane.backends.runtime.swarm import SwarmRuntime
    from envplane.hosts.connect import docker_env
    from envplane.swarm import verify as swarm_proof

    runtime = SwarmRuntime(engine)
    if not runtime.is_manager():
        return None
    resources = [r for _, node in runtime.node_engines()
                 for r in swarm_proof.live(proof.observe(docker_env(node)))]
    report = proof.analyse(resources, proof.admin_digests(os.environ))
    services = runtime.every_service()
    report.findings += swarm_proof.findings(services, runtime.tasks(services), runtime.labelled())
    report.instances |= {o for s in services if (o := swarm_proof.owner(s.labels))}
    return report


@app.command()
def verify(ctx: typer.Context, as_json: JsonOpt = False,
           host: Annotated[str | None, typer.Option(
               "--host", help="A host of the spec's hosts: (a host group or env) to prove, "
               "instead of this machine's engine.")] = None,
           spec: SpecOpt = None) -> None:
    """Prove isolation on this host (or --host): every envplane resource has one owner,
    nothing is shared (no credential either), and no container holds the admin credentials
    of ENVPLANE_*."""
    from envplane import actions
    from envplane import verify as proof
    from envplane.backends.runtime.compose import ComposeRuntime

    opts = _options(ctx, spec if host else None, as_json)
    engine = LOCAL
    if host is not None:
        from envplane.hosts.config import engines_of

        project = actions.open_project(opts.spec, os.environ)
        engines = engines_of(project.spec, project.root)
        cluster = project.spec.hosts[host].kubernetes if host in project.spec.hosts else None
        if cluster is not None:
            raise UsageError(f"hosts.{host} is a Kubernetes cluster: verify --host proves a Docker engine",
                             f"its instances are namespaces labelled envplane.app: kubectl "
                             f"--context={cluster.context} get namespaces -l envplane.app={project.spec.app}")
        if host not in engines:
            raise UsageError(f"no host {host!r} in hosts: of envplane.yaml",
                             "hosts: " + (", ".join(engines) or "(none)"))
        engine = engines[host]
    runtime = ComposeRuntime(engine)
    runtime.check()
    report = _swarm_proof(engine) or proof.analyse(proof.observe(runtime.env),
                                                   proof.admin_digests(os.environ))
    if opts.json:
        print_json({"ok": report.ok, "resources": report.resources,
                    "instances": sorted(report.instances),
                    "violations": [{"kind": f.kind, "subject": f.subject, "detail": f.detail}
                                   for f in report.findings],
                    "shared": [{"kind": f.kind, "subject": f.subject, "detail": f.detail}
                               for f in report.shared]})
        if not report.ok:
            raise typer.Exit(1)
        return
    if report.shared:
        t = table(f"{len(report.shared)} declared sharing(s) (shared: in envplane.yaml, or the app's "
                  "own files)", ["kind", "what", "detail"])
        for f in report.shared:
            t.add_row(f.kind, f.subject, f.detail)
        out.print(t)
    if report.ok:
        shared = "nothing else shared" if report.shared else "nothing shared"
        out.print(f"[bold green]isolated:[/] {report.resources} resources of "
                  f"{len(report.instances)} instance(s), {shared}, all healthy")
    else:
        t = table(f"{len(report.findings)} violation(s)", ["kind", "what", "detail"])
        for f in report.findings:
            t.add_row(f.kind, f.subject, f.detail)
        out.print(t)
    if not report.ok:
        raise typer.Exit(1)

"""`envplane preview up/down/list/gc` and `envplane webhook`: one env per pull request."""

from __future__ import annotations

import os
import signal
import threading
import traceback
from datetime import datetime
from typing import TYPE_CHECKING, Annotated

import typer
from rich.markup import escape

from envplane.cli.main import JsonOpt, SpecOpt, _options, app
from envplane.cli.output import err, out, print_json, table
from envplane.cli.progress import drawing, finished_only
from envplane.cli.run_commands import (
    BuildOpt,
    NoWaitOpt,
    RefOpt,
    TimeoutOpt,
    print_down,
    print_partial,
    print_up,
)
from envplane.errors import EnvplaneError, UsageError

if TYPE_CHECKING:  # loaded by the commands that use them, not by every `envplane` start
    from envplane import actions

previews = typer.Typer(help="Preview environments: one per pull request.", no_args_is_help=True)
app.add_typer(previews, name="preview")

PrArg = Annotated[int, typer.Option("--pr", help="Pull request number.")]


def _project(ctx: typer.Context, spec: SpecOpt) -> actions.Project:
    from envplane import actions

    return actions.open_project(_options(ctx, spec, False).spec, os.environ)


@previews.command("up")
def preview_up(ctx: typer.Context, pr: PrArg, ref: RefOpt = None, build: BuildOpt = False,
               timeout: TimeoutOpt = 120.0, no_wait: NoWaitOpt = False, spec: SpecOpt = None,
               as_json: JsonOpt = False) -> None:
    """Create or update the preview of a pull request."""
    from envplane.service import previews as service

    project = _project(ctx, spec)
    as_json = _options(ctx, spec, as_json).json
    with drawing(err, as_json) as report:
        done = service.up(project, pr, ref=ref, build=build, timeout=timeout, wait=not no_wait, report=report)
    print_up(done, as_json)


@previews.command("down")
def preview_down(ctx: typer.Context, pr: PrArg, no_wait: NoWaitOpt = False, spec: SpecOpt = None,
                 as_json: JsonOpt = False) -> None:
    """Destroy a preview: containers, networks, volumes, data path, routes."""
    from envplane.service import instances
    from envplane.service import previews as service

    project = _project(ctx, spec)
    as_json = _options(ctx, spec, as_json).json
    try:
        done = service.down(project, pr, wait=not no_wait, report=finished_only(as_json))
    except instances.PartialPurge as partial:
        print_partial(partial, as_json)
    if as_json:
        print_json(done.as_dict())
    elif done.down is not None:
        print_down(done.down, as_json)
    else:
        out.print(f"removed the webhook's worktree of PR {pr}; nothing else of it was here")


@previews.command("list")
def preview_list(ctx: typer.Context, spec: SpecOpt = None, as_json: JsonOpt = False) -> None:
    """The previews the state store knows, with their age and state."""
    from envplane.service import previews as service

    project = _project(ctx, spec)
    found = service.list_previews(project)
    if _options(ctx, spec, as_json).json:
        print_json([p.as_dict() for p in found.previews])
        return
    if not found.previews:
        out.print(f"no previews of {project.app}: none was ever deployed here")
        return
    t = table(f"{project.app}: previews", ["instance", "status", "ref", "last deploy", "PR closed"])
    for p in found.previews:
        t.add_row(p.instance, p.status, (p.ref or "")[:12], _when(p.last_deploy_at), _when(p.closed_at))
    out.print(t)
    if found.partial:
        err.print("[yellow]note:[/] a partial preview kept resources (and their secrets) whose server was "
                  "missing or down; `envplane preview gc` retries it")


def _when(moment: datetime | None) -> str:
    return moment.strftime("%Y-%m-%d %H:%M") if moment else "-"


@previews.command("gc")
def preview_gc(
    ctx: typer.Context,
    ttl: Annotated[str | None, typer.Option("--ttl", help="Destroy previews closed this long ago.")] = None,
    idle: Annotated[str, typer.Option("--idle", help="Destroy previews idle this long.")] = "14d",
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Only say what would go.")] = False,
    spec: SpecOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Destroy previews of closed PRs after the TTL, and idle ones; never anything else."""
    from envplane.service import previews as service

    project = _project(ctx, spec)
    done = service.gc(project, ttl=ttl, idle=idle, dry_run=dry_run)  # prints its outcomes at the end
    if _options(ctx, spec, as_json).json:
        print_json(done.as_dict())
        return
    if not done.ever_deployed:
        out.print("nothing to collect: no preview was ever deployed here")
    elif not done.previews:
        out.print("nothing to collect")
    for collected in done.previews:
        out.print(escape(collected.line()))


@app.command("webhook")
def webhook_command(
    ctx: typer.Context,
    listen: Annotated[str, typer.Option("--listen", help="host:port to serve on.")] = "127.0.0.1:9000",
    secret_env: Annotated[str, typer.Option("--secret-env", help="Variable holding the webhook secret.")]
    = "GITHUB_WEBHOOK_SECRET",
    workers: Annotated[int, typer.Option("--workers", min=1, max=8,
                                         help="PRs deployed at once (one action at a time per PR).")] = 2,
    timeout: TimeoutOpt = 300.0,
    spec: SpecOpt = None,
) -> None:
    """Serve GitHub pull_request webhooks: build and deploy each PR's head, mark closed PRs;
    and push events, when webhook.release_on_push is set: release the pushed commit."""
    from envplane import checkouts, lifecycle, preview, webhook
    from envplane.secret import Secret
    from envplane.state import audit, deliveries
    from envplane.webhook_queue import PreviewQueue
    from envplane.webhook_runner import PreviewRunner

    project = _project(ctx, spec)
    value = os.environ.get(secret_env)
    if not value:
        raise UsageError(f"{secret_env} is not set", "the webhook refuses unsigned requests; set the secret")
    host, _, port = listen.rpartition(":")
    if not port.isdigit() or not 0 < int(port) < 65536:
        raise UsageError(f"--listen {listen!r} is not host:port", "e.g. --listen 127.0.0.1:9000")
    env = preview.preview_env(project.envs)
    policy = project.spec.webhook
    trees = checkouts.Checkouts.of(project, policy.remote, policy.max_worktrees)
    trees.check_remote()
    session = lifecycle.open_session(project)

    def say(line: str) -> None:
        err.print(line, markup=False, highlight=False)

    debug = _options(ctx, spec, False).debug

    def failed(action: webhook.Action, error: BaseException) -> None:
        why = error.message if isinstance(error, EnvplaneError) else f"{type(error).__name__}: {error}"
        say(f"{action.label} {(action.ref or '')[:12]}: failed: {why}")
        if debug:
            say("".join(traceback.format_exception(error)).rstrip())

    def superseded(old: webhook.Action, new: webhook.Action) -> None:
        say(f"{old.label} {(old.ref or '')[:12]}: superseded by {(new.ref or '')[:12]} before it started")

    def audit_refusal(refusal: webhook.Refusal) -> None:
        audit.record(session.store, f"github:{refusal.sender or 'unknown'}", "webhook", project.app, env,
                     f"pr-{refusal.pr}" if refusal.pr else None, "refused",
                     {"reason": refusal.reason, "status": refusal.status, "ref": refusal.ref})

    runner = PreviewRunner(project, env, session.store, trees, say, timeout)
    queue = PreviewQueue(runner, workers, superseded, failed).start()
    receiver = webhook.Receiver(Secret(value), policy,
                                lambda delivery: deliveries.first_time(session.store, project.app, delivery),
                                queue.submit, audit_refusal, say)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda signum, frame: stop.set())
    say(f"webhook: serving on http://{listen}/ for {project.app} previews (env {env}), "
        f"PR heads from {trees.remote} into {project.root / checkouts.WORKTREES}")
    try:
        webhook.serve((host or "127.0.0.1", int(port)), receiver, stop=stop)
    except KeyboardInterrupt:
        pass
    finally:
        say("webhook: stopping; finishing the actions under way")
        queue.stop(timeout)

"""`envplane preview up/down/list/gc` and `envplane webhook`: one env per pull request."""

from __future__ import annotations

import os
from datetime import UTC, datetime
from typing import Annotated

import typer

from envplane import actions
from envplane.cli.main import JsonOpt, SpecOpt, _options, app
from envplane.cli.output import err, out, print_json, table
from envplane.cli.run_commands import BuildOpt, NoWaitOpt, RefOpt, TimeoutOpt, do_down, do_up
from envplane.errors import EnvplaneError, UsageError

previews = typer.Typer(help="Preview environments: one per pull request.", no_args_is_help=True)
app.add_typer(previews, name="preview")

PrArg = Annotated[int, typer.Option("--pr", help="Pull request number.")]


def _project(ctx: typer.Context, spec: SpecOpt) -> actions.Project:
    return actions.open_project(_options(ctx, spec, False).spec, os.environ)


@previews.command("up")
def preview_up(ctx: typer.Context, pr: PrArg, ref: RefOpt = None, build: BuildOpt = False,
               timeout: TimeoutOpt = 120.0, no_wait: NoWaitOpt = False, spec: SpecOpt = None,
               as_json: JsonOpt = False) -> None:
    """Create or update the preview of a pull request."""
    from envplane import preview

    project = _project(ctx, spec)
    do_up(project, preview.preview_env(project.envs), pr, None, ref, timeout, no_wait,
          _options(ctx, spec, as_json).json, build)


@previews.command("down")
def preview_down(ctx: typer.Context, pr: PrArg, no_wait: NoWaitOpt = False, spec: SpecOpt = None,
                 as_json: JsonOpt = False) -> None:
    """Destroy a preview: containers, networks, volumes, data path, routes."""
    from envplane import preview

    project = _project(ctx, spec)
    do_down(project, preview.preview_env(project.envs), pr, None, True, no_wait,
            _options(ctx, spec, as_json).json)


@previews.command("list")
def preview_list(ctx: typer.Context, spec: SpecOpt = None, as_json: JsonOpt = False) -> None:
    """The previews the state store knows, with their age and state."""
    from envplane import lifecycle, preview
    from envplane.state import instances

    project = _project(ctx, spec)
    session = lifecycle.open_session(project)
    env = preview.preview_env(project.envs)
    rows = [r for r in instances.list_instances(session.store, project.app, env)]
    if _options(ctx, spec, as_json).json:
        print_json([{"pr": r.instance, "status": r.status, "ref": r.ref,
                     "last_deploy_at": r.last_deploy_at, "closed_at": r.closed_at} for r in rows])
        return
    t = table(f"{project.app}: previews", ["instance", "status", "ref", "last deploy", "PR closed"])
    for r in rows:
        t.add_row(r.instance, r.status, (r.ref or "")[:12], _when(r.last_deploy_at), _when(r.closed_at))
    out.print(t)


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
    from envplane import lifecycle, preview
    from envplane.state import instances

    project = _project(ctx, spec)
    env = preview.preview_env(project.envs)
    session = lifecycle.open_session(project)
    limit = preview.duration(ttl or project.envs[env].ttl or "7d")
    found = preview.gc_candidates(instances.list_instances(session.store, project.app),
                                  project.envs, datetime.now(UTC), limit, preview.duration(idle))
    done: list[dict[str, object]] = []
    for candidate in found:
        record = candidate.record
        entry: dict[str, object] = {"instance": record.instance, "env": record.env,
                                    "reason": candidate.reason, "destroyed": False}
        if not dry_run:
            target = actions.resolve(project, record.env, int(record.instance.removeprefix("pr-")))
            try:
                lifecycle.down(session, target, purge=True)
                entry["destroyed"] = True
            except EnvplaneError as exc:
                entry["error"] = exc.message
        done.append(entry)
    if _options(ctx, spec, as_json).json:
        print_json({"dry_run": dry_run, "previews": done})
        return
    if not done:
        out.print("nothing to collect")
    for entry in done:
        verb = "would destroy" if dry_run else "destroyed" if entry["destroyed"] else "failed to destroy"
        failure = f" ({entry['error']})" if "error" in entry else ""
        out.print(f"{verb} {entry['instance']}: {entry['reason']}{failure}")


@app.command("webhook")
def webhook_command(
    ctx: typer.Context,
    listen: Annotated[str, typer.Option("--listen", help="host:port to serve on.")] = "127.0.0.1:9000",
    secret_env: Annotated[str, typer.Option("--secret-env", help="Variable holding the webhook secret.")]
    = "GITHUB_WEBHOOK_SECRET",
    timeout: TimeoutOpt = 300.0,
    spec: SpecOpt = None,
) -> None:
    """Serve GitHub pull_request webhooks: opened/synchronize/reopened -> preview up, closed -> close."""
    from envplane import lifecycle, preview, webhook
    from envplane.secret import Secret
    from envplane.state import audit, instances

    project = _project(ctx, spec)
    value = os.environ.get(secret_env)
    if not value:
        raise UsageError(f"{secret_env} is not set", "the webhook refuses unsigned requests; set the secret")
    env = preview.preview_env(project.envs)
    session = lifecycle.open_session(project)
    host, _, port = listen.rpartition(":")

    def runner(action: webhook.Action) -> None:
        assert action.pr is not None
        if action.kind == "up":
            # a new commit of the PR: rebuild its images
            do_up(project, env, action.pr, None, action.ref, timeout, False, False, build=True)
        elif action.kind == "close":
            if instances.get_instance(session.store, project.app, env, f"pr-{action.pr}") is not None:
                instances.mark_closed(session.store, project.app, env, f"pr-{action.pr}")
            audit.record(session.store, "github", "pr-closed", project.app, env, f"pr-{action.pr}", "ok",
                         {"ref": action.ref})

    def refused(refusal: webhook.Refusal, peer: str) -> None:
        err.print(f"[red]refused[/] webhook from {peer}: {refusal.reason}")
        audit.record(session.store, f"webhook:{peer}", "webhook", project.app, None, None, "refused",
                     {"reason": refusal.reason, "status": refusal.status})

    err.print(f"webhook: serving on http://{listen}/ for {project.app} previews (env {env})")
    webhook.serve((host or "127.0.0.1", int(port)), Secret(value), runner, refused)

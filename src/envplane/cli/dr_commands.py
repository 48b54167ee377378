"""`backup`, `backups`, `restore`, `dr drill`: disaster recovery (issue 13). Parses, calls
envplane.dr.service, formats; nothing more."""

from __future__ import annotations

import os
import sys
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.markup import escape

from envplane.cli.main import EnvArg, JsonOpt, PrOpt, SpecOpt, _options, app
from envplane.cli.output import err, out, print_json, table
from envplane.cli.progress import session_for as _session
from envplane.cli.progress import step_printer as _step_printer
from envplane.cli.run_commands import NoWaitOpt, TimeoutOpt
from envplane.errors import EnvplaneError, UsageError

if TYPE_CHECKING:  # loaded by the commands that use them, not by every `envplane` start
    from envplane import actions
    from envplane.dr.service import Opened

dr_app = typer.Typer(help="Disaster recovery: drills that restore a backup and measure RPO and RTO.",
                     no_args_is_help=True)
app.add_typer(dr_app, name="dr")


def _size(n: int) -> str:
    value = float(n)
    for unit in ("B", "KB", "MB", "GB"):
        if value < 1024 or unit == "GB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{n} B"


def _part_printer(as_json: bool) -> Any:
    marks = {"ok": "[green]✓[/]", "skip": "[dim]–[/]", "failed": "[red]✗[/]"}

    def hook(kind: str, state: str, seconds: float, size: int) -> None:
        if not as_json:
            sized = f" {_size(size)}" if size else ""
            err.print(f"{marks[state]} {kind}{sized} [dim]{seconds:.1f}s[/]")

    return hook


def _warn(message: str) -> None:
    err.print(f"[yellow]warning:[/] {escape(message)}")


def parse_time(text: str) -> datetime:
    """An ISO 8601 moment with its zone (`2026-12-02T01:00:00Z`); a bare time is refused."""
    try:
        moment = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        raise UsageError(f"--at {text!r} is not a time", "use ISO 8601 with a zone, e.g. 2026-12-02T01:00:00Z"
                         ) from None
    if moment.tzinfo is None:
        raise UsageError(f"--at {text!r} has no time zone", "add Z (UTC) or an offset such as +01:00")
    return moment.astimezone(UTC)


@app.command()
def backup(
    ctx: typer.Context,
    env: EnvArg = None,
    pr: PrOpt = None,
    due: Annotated[bool, typer.Option("--due", help="Back up every env whose schedule (backup.every) "
                                      "is due; for cron or a systemd timer.")] = False,
    spec: SpecOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Back up an instance: database, data folder, bucket and secrets, encrypted; prints the id."""
    from envplane import actions
    from envplane.dr import service

    opts = _options(ctx, spec, as_json)
    project = actions.open_project(opts.spec, os.environ)
    if not due:
        project.env(actions.default_env(os.environ, env))  # bad input changes nothing: no store
    session = _session(project, no_wait=False)
    if due:
        if env is not None or pr is not None:
            raise UsageError("--due backs up every env that is due", "name no env with --due")
        envs = service.due_envs(session, project, os.environ)
    else:
        envs = [actions.default_env(os.environ, env)]
    results, failed = [], []
    for name in envs:
        opened = service.open_instance(project, name, pr, os.environ)
        try:
            outcome = service.run_backup(session, opened, _warn, _part_printer(opts.json))
        except EnvplaneError as exc:
            if not due:
                raise
            failed.append({"env": name, "error": exc.message})
            err.print(f"[red]✗[/] {name}: {escape(exc.message)}")
            continue
        m = outcome.result.manifest
        results.append({"env": name, "instance": m.instance, "id": m.id, "size": m.size,
                        "seconds": round(outcome.result.seconds, 2), "verified": m.verified_at is not None,
                        "parts": {p.kind: p.size for p in m.parts}, "store": opened.store.where,
                        "deleted": list(outcome.pruned.delete) if outcome.pruned else [],
                        "archiving": outcome.archiving})
        if not opts.json:
            out.print(m.id)
            err.print(f"[green]backed up[/] {m.app} {m.instance} to {escape(opened.store.where)}: "
                      f"{_size(m.size)} in {outcome.result.seconds:.1f}s, verified")
            if outcome.archiving:
                err.print(f"[green]✓[/] {escape(outcome.archiving)}")
            if outcome.pruned and outcome.pruned.delete:
                err.print(f"retention deleted {len(outcome.pruned.delete)} older backup(s)")
    if opts.json:
        print_json(results[0] if not due and results else {"backups": results, "failed": failed})
    elif due and not envs:
        err.print("no backup is due")
    if failed:
        raise typer.Exit(1)


@app.command()
def backups(
    ctx: typer.Context,
    what: Annotated[str | None, typer.Argument(
        help="An env (list its backups), `status` (alarms of every env; exit 1 when one stands) "
        "or `prune ENV` (apply retention).", show_default=False)] = None,
    env: Annotated[str | None, typer.Argument(help="The env of `prune`.", show_default=False)] = None,
    pr: PrOpt = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="prune: say what would go, delete nothing.")
                       ] = False,
    spec: SpecOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """List backups with age, size, release and verification; `backups status`; `backups prune ENV`."""
    from envplane import actions
    from envplane.dr import service

    opts = _options(ctx, spec, as_json)
    project = actions.open_project(opts.spec, os.environ)
    if what == "status":
        _status(project, opts.json)
        return
    if what == "prune":
        _prune(project, actions.default_env(os.environ, env), pr, dry_run, opts.json)
        return
    if env is not None:
        raise UsageError(f"unexpected argument {env!r}", "envplane backups [ENV] | status | prune ENV")
    names = [what] if what else service.single_instance_envs(project) if pr is None else []
    now = datetime.now(UTC)
    found: list[dict[str, Any]] = []
    for name in names:
        try:
            opened = service.open_instance(project, name, pr, os.environ)
            found += [{"env": name, **service.backup_row_dict(b, now)} for b in service.backups_of(opened)]
        except EnvplaneError as exc:
            if what:  # the env asked for: its error is the answer
                raise
            _warn(f"{name}: {exc.message}")
    if opts.json:
        print_json(found)
        return
    if not found:
        out.print(f"no backups of {project.app}" + (f" {what}" if what else "") + " yet")
        return
    t = table(f"{project.app}: backups", ["env", "id", "age", "size", "release", "state"])
    from envplane.dr.schedule import span

    for row in found:
        age = span(now - datetime.fromisoformat(row["started_at"])) if "started_at" in row else ""
        state = "[green]verified[/]" if row.get("verified") else f"[red]{escape(str(row['state']))}[/]"
        t.add_row(row["env"], row["id"], age, _size(row["size"]) if "size" in row else "",
                  row.get("release") or "", state)
    out.print(t)


def _status(project: actions.Project, as_json: bool) -> None:
    from envplane.dr import service

    session = _session(project, no_wait=False)
    facts, alarms = service.status(session, project, os.environ)
    now = datetime.now(UTC)
    if as_json:
        print_json({"ok": not alarms,
                    "envs": [{"env": f.env, "every": f.every.total_seconds() if f.every else None,
                              "newest_verified": f.newest_verified, "active": f.active,
                              "last_good_drill": f.last_good_drill} for f in facts],
                    "alarms": [{"env": a.env, "kind": a.kind, "message": a.message} for a in alarms]})
    else:
        from envplane.dr.schedule import span

        t = table(f"{project.app}: backup status", ["env", "schedule", "newest verified", "last good drill"])
        for f in facts:
            t.add_row(f.env, f"every {span(f.every)}" if f.every else "(none)",
                      f"{span(now - f.newest_verified)} ago" if f.newest_verified else "never",
                      f"{span(now - f.last_good_drill)} ago" if f.last_good_drill else "never")
        out.print(t)
        for alarm in alarms:
            err.print(f"[bold red]alarm:[/] {escape(alarm.message)}")
        if not alarms:
            out.print("[green]no alarm[/]")
    if alarms:
        raise typer.Exit(1)


def _prune(project: actions.Project, env: str, pr: int | None, dry_run: bool, as_json: bool) -> None:
    from envplane.dr import service

    project.env(env)
    session = _session(project, no_wait=False)
    opened = service.open_instance(project, env, pr, os.environ)
    decision = service.prune(session, opened, dry_run)
    if as_json:
        print_json({"dry_run": dry_run, "keep": list(decision.keep), "delete": list(decision.delete),
                    "why": decision.why})
        return
    for backup_id in decision.keep:
        out.print(f"keep   {backup_id}  [dim]{escape(decision.why[backup_id])}[/]")
    for backup_id in decision.delete:
        verb = "would delete" if dry_run else "deleted"
        out.print(f"[red]{verb}[/] {backup_id}  [dim]{escape(decision.why[backup_id])}[/]")


YesOpt = Annotated[bool, typer.Option("--yes", help="Restore over a running staging or production "
                                      "without asking.")]


@app.command()
def restore(
    ctx: typer.Context,
    env: EnvArg = None,
    pr: PrOpt = None,
    from_: Annotated[str | None, typer.Option("--from", help="Backup id, or `latest` (the newest verified).")
                     ] = None,
    at: Annotated[str | None, typer.Option("--at", help="A moment (ISO 8601 with zone): the database as "
                                           "it was then (WAL archiving), the rest from the backup before.")
                  ] = None,
    to: Annotated[str | None, typer.Option("--to", help="Restore into this env instead (dr, a scratch env).")
                  ] = None,
    to_pr: Annotated[int | None, typer.Option("--to-pr", help="PR number of --to, when it is per PR.")
                     ] = None,
    yes: YesOpt = False,
    timeout: TimeoutOpt = 120.0,
    no_wait: NoWaitOpt = False,
    spec: SpecOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Restore a backup into the instance (or --to another env): stop, restore, start, health-check."""
    from envplane import actions
    from envplane.dr import service

    opts = _options(ctx, spec, as_json)
    if from_ is None and at is None:
        raise UsageError("which backup?", "pass --from ID, --from latest, or --at TIME")
    if from_ is not None:
        from envplane.dr.restore import check_backup_id

        check_backup_id(from_)
    project = actions.open_project(opts.spec, os.environ)
    env_name = actions.default_env(os.environ, env)
    moment = parse_time(at) if at else None
    source = service.open_instance(project, env_name, pr, os.environ)
    dest = service.open_instance(project, to, to_pr, os.environ) if to else source
    _confirm(dest, yes)
    session = _session(project, no_wait)
    pitr = None
    if moment is not None:
        from envplane.dr import pitr as point_in_time

        pitr = point_in_time.restorer(source, moment)
    detail = service.run_restore(session, project, source, dest, from_, moment,
                                 _part_printer(opts.json), _step_printer(opts.json), timeout, pitr)
    if opts.json:
        print_json({"instance": dest.target.id, **detail})
        return
    out.print(f"[bold green]restored[/] backup {detail['backup']} of {source.target.id} into "
              f"{dest.target.app} {dest.target.id}" + (f" as of {moment.isoformat()}" if moment else ""))
    for service_name, url in dict(detail.get("urls") or {}).items():
        out.print(f"  {service_name}: {url}")


def _confirm(dest: Opened, yes: bool) -> None:
    """Restoring over a running staging or production asks first (or needs --yes)."""
    from envplane.dr.restore import needs_confirmation

    target = dest.target
    if yes or target.env.runtime != "compose":
        return
    from envplane.backends.runtime.compose import ComposeRuntime

    runtime = ComposeRuntime(target.engine)
    runtime.check()
    running = bool(runtime.containers(target.app, target.id))
    if not needs_confirmation(target.env.lifecycle, running):
        return
    question = f"{target.app} {target.id} is running; replace its data with the backup's?"
    if sys.stdin.isatty() and typer.confirm(question, default=False):
        return
    raise UsageError(f"{target.app} {target.id} is running: a restore replaces its database, data, "
                     "bucket and secrets", "pass --yes to restore over it")


@dr_app.command("drill")
def drill(
    ctx: typer.Context,
    env: Annotated[str, typer.Option("--env", help="The env whose backup is restored.")] = "production",
    to: Annotated[str, typer.Option("--to", help="Where it is restored (dr, or a scratch env).")] = "dr",
    at: Annotated[str | None, typer.Option("--at", help="A point in time instead of the latest backup.")
                  ] = None,
    timeout: TimeoutOpt = 300.0,
    spec: SpecOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Restore the latest backup into dr, run the health checks and dr.checks, and measure RPO and
    RTO against the targets; exit 1 when a target is missed or a check fails."""
    from envplane import actions
    from envplane.dr import drill as drills

    opts = _options(ctx, spec, as_json)
    project = actions.open_project(opts.spec, os.environ)
    project.env(env)
    project.env(to)
    moment = parse_time(at) if at else None
    session = _session(project, no_wait=False)
    report = drills.run(session, project, env, to, moment, os.environ,
                        _part_printer(opts.json), _step_printer(opts.json), timeout)
    if opts.json:
        print_json(report.as_dict())
    else:
        from envplane.dr.schedule import span

        for check in report.checks:
            mark = "[green]✓[/]" if check.ok else "[red]✗[/]"
            err.print(f"{mark} check {escape(check.name)}: {escape(check.detail)}")
        rpo = span(report.rpo) if report.rpo is not None else "?"
        rto = span(report.rto) if report.rto is not None else "?"
        colour = "green" if report.ok else "red"
        out.print(f"[bold {colour}]drill {'passed' if report.ok else 'FAILED'}[/]: restored "
                  f"{report.backup_id or '-'} of {env} into {to}; "
                  f"RPO {rpo} (target {span(report.rpo_target)}), "
                  f"RTO {rto} (target {span(report.rto_target)})")
        for problem in report.problems:
            err.print(f"[bold red]alarm:[/] {escape(problem)}")
    if not report.ok:
        raise typer.Exit(1)

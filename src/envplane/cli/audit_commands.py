"""`envplane audit log/verify`: read and prove the hash-chained audit log."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Annotated

import typer

from envplane import actions
from envplane.cli.main import JsonOpt, SpecOpt, _options, app
from envplane.cli.output import out, print_json, table

if TYPE_CHECKING:  # the state store loads SQLAlchemy: only commands that use it pay for it
    from envplane.state.db import Store

audit_app = typer.Typer(help="The append-only, hash-chained audit log.", no_args_is_help=True)
app.add_typer(audit_app, name="audit")


def _store(ctx: typer.Context, spec: SpecOpt) -> Store:
    from envplane.state.db import open_store

    opts = _options(ctx, spec, False)
    project = actions.open_project(opts.spec, os.environ)
    return open_store(project.root, os.environ.get("ENVPLANE_STATE_URL"))


@audit_app.command("log")
def audit_log(
    ctx: typer.Context,
    limit: Annotated[int, typer.Option("--limit", "-n", help="How many rows, newest last.")] = 50,
    spec: SpecOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Show who did what, when, to which instance, and how it ended."""
    from envplane.state import audit

    rows = audit.entries(_store(ctx, spec), limit)
    if as_json or _options(ctx, spec, as_json).json:
        print_json([{"id": r.id, "at": r.at.isoformat(), "actor": r.actor, "action": r.action,
                     "app": r.app, "env": r.env, "instance": r.instance, "outcome": r.outcome,
                     "detail": r.detail} for r in rows])
        return
    t = table("audit log", ["#", "at (UTC)", "actor", "action", "instance", "outcome"])
    for r in rows:
        t.add_row(str(r.id), r.at.strftime("%Y-%m-%d %H:%M:%S"), r.actor, r.action,
                  f"{r.env}/{r.instance}" if r.env else "-", r.outcome)
    out.print(t)


@audit_app.command("verify")
def audit_verify(ctx: typer.Context, spec: SpecOpt = None, as_json: JsonOpt = False) -> None:
    """Check the hash chain: an edited, deleted or reordered row is named; exit 1 if any."""
    from envplane.state import audit

    result = audit.verify(_store(ctx, spec))
    if as_json or _options(ctx, spec, as_json).json:
        print_json({"ok": result.ok, "rows": result.rows, "problems": result.problems,
                    "last_hash": result.last_hash})
    elif result.ok:
        out.print(f"[bold green]audit log intact:[/] {result.rows} rows, last hash {result.last_hash[:16]}…")
    else:
        for problem in result.problems:
            out.print(f"[bold red]broken:[/] {problem}")
    if not result.ok:
        raise typer.Exit(1)

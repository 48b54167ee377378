"""`envplane audit log/verify/key`: read and prove the keyed, hash-chained audit log."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Annotated

import typer

from envplane.cli.main import JsonOpt, SpecOpt, _options, app
from envplane.cli.output import out, print_json, table

if TYPE_CHECKING:  # the state store loads SQLAlchemy: only commands that use it pay for it
    from envplane.spec.load import Project

audit_app = typer.Typer(help="The append-only audit log, chained with a key kept outside the store.",
                        no_args_is_help=True)
app.add_typer(audit_app, name="audit")


def _project(ctx: typer.Context, spec: SpecOpt) -> Project:
    from envplane import actions

    return actions.open_project(_options(ctx, spec, False).spec, os.environ)


@audit_app.command("log")
def audit_log(
    ctx: typer.Context,
    limit: Annotated[int, typer.Option("--limit", "-n", help="How many rows, newest last.")] = 50,
    spec: SpecOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Show who did what, when, to which instance, and how it ended."""
    from envplane.service import audit

    found = audit.log(_project(ctx, spec), limit)
    if as_json or _options(ctx, spec, as_json).json:
        print_json([audit.entry_dict(r) for r in found.entries])
        return
    if not found.entries:
        out.print("the audit log is empty")
        return
    t = table("audit log", ["#", "at (UTC)", "actor", "action", "instance", "outcome"])
    for r in found.entries:
        t.add_row(str(r.id), r.at.strftime("%Y-%m-%d %H:%M:%S"), r.actor, r.action,
                  f"{r.env}/{r.instance}" if r.env else "-", r.outcome)
    out.print(t)


@audit_app.command("verify")
def audit_verify(ctx: typer.Context, spec: SpecOpt = None, as_json: JsonOpt = False) -> None:
    """Check the keyed chain: an edited, deleted or reordered row, or one whose hash was
    recomputed without the audit key, is named; exit 1 if any."""
    from envplane.service import audit

    result = audit.verify(_project(ctx, spec))
    if as_json or _options(ctx, spec, as_json).json:
        print_json(result.as_dict())
    elif result.ok:
        out.print(f"[bold green]audit log intact:[/] {result.rows} rows, last hash {result.last_hash[:16]}…, "
                  f"keyed with {result.key_id} ({result.key_source})")
    else:
        for problem in result.problems:
            out.print(f"[bold red]broken:[/] {problem}")
    if result.ok and result.unkeyed:
        out.print(f"[yellow]note:[/] rows 1-{result.unkeyed} were written before audit keys: they are a "
                  "plain SHA-256 chain, which whoever could write the database could have recomputed")
    if not result.ok:
        raise typer.Exit(1)


@audit_app.command("key")
def audit_key_start(ctx: typer.Context, spec: SpecOpt = None, as_json: JsonOpt = False) -> None:
    """Once, for a log written before audit keys: chain it with the audit key from here on.

    Run `envplane audit verify` first: the plain rows before are vouched for as found."""
    from envplane.service import audit

    keyed = audit.start_keyed(_project(ctx, spec))
    if as_json or _options(ctx, spec, as_json).json:
        print_json(keyed.as_dict())
    elif keyed.keyed_from is None:
        out.print("the audit log is keyed already (or empty): nothing to do")
    else:
        out.print(f"audit log keyed from row {keyed.keyed_from} with {keyed.key_id}; rows "
                  f"1-{keyed.keyed_from - 1} stay plain SHA-256"
                  + (f" ([red]{len(keyed.problems)} problem(s) found in them[/])" if keyed.problems else ""))

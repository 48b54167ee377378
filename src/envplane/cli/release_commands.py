"""`release`, `releases`, `approve`, `gates`, `promote`, `rollback`: a version's way up."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Annotated

import typer
from rich.markup import escape

from envplane import actions
from envplane.cli.main import JsonOpt, PrOpt, SpecOpt, _options, app
from envplane.cli.output import err, out, print_json, table
from envplane.cli.run_commands import NoWaitOpt, TimeoutOpt, _session, _step_printer

if TYPE_CHECKING:  # loaded by the commands that use them, not by every `envplane` start
    from envplane.release.flow import Deployed
    from envplane.release.gates import Verdict

VersionArg = Annotated[str, typer.Argument(help="A release version, e.g. v1.0.45.")]
ToOpt = Annotated[str, typer.Option("--to", help="The env it goes to (production, staging, ...).")]


def _deployed_dict(d: Deployed) -> dict[str, object]:
    return {"version": d.version, "env": d.env, "instance": d.instance, "colour": d.colour,
            "urls": d.urls, "switch_seconds": d.switch_seconds}


def _print_deployed(d: Deployed) -> None:
    colour = f" ({d.colour})" if d.colour else ""
    out.print(f"[bold green]{d.version} is live on {d.env}[/]{colour}")
    for name, url in d.urls.items():
        out.print(f"  {name}: {url}")


def _result(ok: bool) -> str:
    return "[green]pass[/]" if ok else "[red]FAIL[/]"


def _verdict_table(verdict: Verdict, title: str) -> None:
    t = table(title, ["gate", "result", "detail"])
    for r in verdict.results:
        t.add_row(r.gate, _result(r.ok), escape(r.detail))
    out.print(t)


@app.command()
def release(
    ctx: typer.Context,
    env: Annotated[str, typer.Argument(help="Where the new version goes first.")] = "staging",
    pr: PrOpt = None,
    ref: Annotated[str | None, typer.Option("--ref", help="Git ref to release (default HEAD).")] = None,
    timeout: TimeoutOpt = 120.0,
    no_wait: NoWaitOpt = False,
    spec: SpecOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Build the next version once (v1.0.44 -> v1.0.45), record its images, deploy it."""
    from envplane.release import flow

    opts = _options(ctx, spec, as_json)
    project = actions.open_project(opts.spec, os.environ)
    session = _session(project, no_wait)
    made, deployed = flow.create(session, env, pr, ref, _step_printer(opts.json), timeout)
    if opts.json:
        print_json({"version": made.version, "commit": made.commit, "images": made.images,
                    "deployed": _deployed_dict(deployed)})
        return
    out.print(f"[bold]released {made.version}[/] from {made.commit and made.commit[:12]}")
    for service, image in made.images.items():
        out.print(f"  {service}: {image['ref']} {str(image.get('id') or '')[:19]}")
    _print_deployed(deployed)


@app.command()
def releases(
    ctx: typer.Context,
    env: Annotated[str | None, typer.Argument(help="Only releases deployed on this env.")] = None,
    spec: SpecOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Every release, newest first, with where each one runs now."""
    from envplane.state import releases as store
    from envplane.state.db import open_store

    opts = _options(ctx, spec, as_json)
    project = actions.open_project(opts.spec, os.environ)
    if env:
        project.env(env)
    db = open_store(project.root, os.environ.get("ENVPLANE_STATE_URL"))
    placed = store.placements(db, project.app)
    rows = []
    for r in store.list_releases(db, project.app):
        running = [p for p in placed if p.version == r.version]
        if env and not any(p.env == env for p in running):
            continue
        rows.append((r, [f"{p.env}/{p.instance}" + (f" ({p.colour})" if p.colour else "") for p in running]))
    if opts.json:
        print_json([{"version": r.version, "commit": r.commit, "ref": r.ref, "by": r.actor,
                     "created_at": r.created_at.isoformat(), "deployed_on": where,
                     "images": r.images} for r, where in rows])
        return
    t = table(f"{project.app}: releases", ["version", "commit", "created (UTC)", "by", "running on"])
    for r, where in rows:
        t.add_row(r.version, (r.commit or "")[:12], r.created_at.strftime("%Y-%m-%d %H:%M"), r.actor,
                  ", ".join(where) or "-")
    out.print(t)


@app.command()
def approve(
    ctx: typer.Context,
    version: VersionArg,
    to: ToOpt = "production",
    spec: SpecOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Approve a version for an env, as $ENVPLANE_USER (else the OS user)."""
    from envplane.release import flow

    opts = _options(ctx, spec, as_json)
    project = actions.open_project(opts.spec, os.environ)
    session = _session(project, False)
    flow.approve(session, version, to)
    if opts.json:
        print_json({"version": version, "env": to, "approved_by": session.actor})
        return
    out.print(f"{escape(session.actor)} approved {version} for {to}")


@app.command()
def gates(
    ctx: typer.Context,
    version: VersionArg,
    spec: SpecOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """The gate results of a version's latest promotion attempt, per env."""
    from envplane.state import releases as store
    from envplane.state.db import open_store

    opts = _options(ctx, spec, as_json)
    project = actions.open_project(opts.spec, os.environ)
    rows = store.latest_gates(open_store(project.root, os.environ.get("ENVPLANE_STATE_URL")),
                              project.app, version)
    if opts.json:
        print_json([{"env": r.env, "gate": r.gate, "ok": r.ok, "detail": r.detail, "by": r.actor,
                     "at": r.at.isoformat()} for r in rows])
        return
    if not rows:
        out.print(f"no gates were evaluated for {version} yet (`envplane promote {version} --to ENV`)")
        return
    t = table(f"{project.app} {version}: gates", ["env", "gate", "result", "detail", "at (UTC)"])
    for r in rows:
        t.add_row(r.env, r.gate, _result(r.ok), escape(r.detail),
                  r.at.strftime("%Y-%m-%d %H:%M:%S"))
    out.print(t)


@app.command()
def promote(
    ctx: typer.Context,
    version: VersionArg,
    to: ToOpt = "production",
    timeout: TimeoutOpt = 120.0,
    no_wait: NoWaitOpt = False,
    spec: SpecOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Run the env's gates for a version; deploy that same release when every one passes."""
    from envplane.release import flow

    opts = _options(ctx, spec, as_json)
    project = actions.open_project(opts.spec, os.environ)
    def show(verdict: Verdict) -> None:
        if not opts.json:
            failed = len(verdict.failed)
            _verdict_table(verdict, f"{version} → {to}: " + (f"refused, {failed} gate(s) failed"
                                                              if failed else "every gate passed"))

    result = flow.promote(_session(project, no_wait), version, to, _step_printer(opts.json), timeout,
                          show)
    if opts.json:
        print_json({
            "version": version, "env": to, "promoted": result.deployed is not None,
            "gates": [{"gate": r.gate, "ok": r.ok, "detail": r.detail} for r in result.verdict.results],
            "p95": {"requests": result.measured.requests, "errors": result.measured.errors,
                    "p95_ms": result.measured.p95_ms} if result.measured else None,
            "deployed": _deployed_dict(result.deployed) if result.deployed else None,
        })
    elif result.deployed is not None:
        _print_deployed(result.deployed)
    if result.deployed is None:
        if not opts.json:
            err.print("[red]not promoted[/]: fix the failed gates and promote again")
        raise typer.Exit(1)


@app.command()
def rollback(
    ctx: typer.Context,
    env: Annotated[str, typer.Argument(help="The env to roll back.")],
    to: Annotated[str | None, typer.Option("--to", help="This release (default: the previous).")] = None,
    timeout: TimeoutOpt = 120.0,
    no_wait: NoWaitOpt = False,
    spec: SpecOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Return an env to its previous release (or --to VERSION), through the same switch."""
    from envplane.release import flow

    opts = _options(ctx, spec, as_json)
    project = actions.open_project(opts.spec, os.environ)
    deployed = flow.rollback(_session(project, no_wait), env, to, _step_printer(opts.json), timeout)
    if opts.json:
        print_json(_deployed_dict(deployed))
        return
    _print_deployed(deployed)

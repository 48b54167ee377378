"""`release`, `releases`, `approve`, `gates`, `promote`, `rollback`: a version's way up."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.markup import escape

from envplane.cli.main import JsonOpt, PrOpt, SpecOpt, _options, app
from envplane.cli.output import err, out, print_json, table
from envplane.cli.progress import drawing, finished_only
from envplane.cli.run_commands import NoWaitOpt, TimeoutOpt, confirming

if TYPE_CHECKING:  # loaded by the commands that use them, not by every `envplane` start
    from envplane import actions
    from envplane.release.flow import Deployed
    from envplane.release.gates import Verdict

VersionArg = Annotated[str, typer.Argument(help="A release version, e.g. v1.0.45.")]
ToOpt = Annotated[str, typer.Option("--to", help="The env it goes to (production, staging, ...).")]
KeyOpt = Annotated[Path | None, typer.Option(
    "--key", help="Your SSH key to sign with: a private key, or its .pub when ssh-agent holds it "
    "(default: ssh-agent's key, else ~/.ssh/id_ed25519).", show_default=False)]


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


def _project(ctx: typer.Context, spec: SpecOpt, as_json: bool) -> tuple[actions.Project, bool]:
    from envplane import actions

    opts = _options(ctx, spec, as_json)
    return actions.open_project(opts.spec, os.environ), opts.json


@app.command()
def release(
    ctx: typer.Context,
    env: Annotated[str, typer.Argument(help="Where the new version goes first.")] = "staging",
    pr: PrOpt = None,
    ref: Annotated[str | None, typer.Option(
        "--ref", help="Git ref to release: HEAD's commit, or a full sha from the app's remote.")] = None,
    timeout: TimeoutOpt = 120.0,
    no_wait: NoWaitOpt = False,
    spec: SpecOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Build the next version once (v1.0.44 -> v1.0.45), record its images, deploy it."""
    from envplane.service import releases

    project, as_json = _project(ctx, spec, as_json)
    releases.checked(project, None, env)  # before the progress drawing starts
    with drawing(err, as_json) as report:
        made = releases.create(project, env, pr, ref, timeout=timeout, wait=not no_wait, report=report)
    if as_json:
        print_json(made.as_dict())
        return
    out.print(f"[bold]released {made.version}[/] from {made.commit and made.commit[:12]}")
    for service, image in made.images.items():
        out.print(f"  {service}: {image['ref']} {str(image.get('id') or '')[:19]}")
    _print_deployed(made.deployed)


@app.command()
def releases(
    ctx: typer.Context,
    env: Annotated[str | None, typer.Argument(help="Only releases deployed on this env.")] = None,
    spec: SpecOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Every release, newest first, with where each one runs now."""
    from envplane.service import releases as service

    project, as_json = _project(ctx, spec, as_json)
    found = service.list_releases(project, env)
    if as_json:
        print_json([r.as_dict() for r in found.releases])
        return
    if not found.releases:
        out.print(f"no release of {project.app}" + (f" ran on {env}" if env else " yet")
                  + ("" if found.has_store else " (no state store here yet)"))
        return
    t = table(f"{project.app}: releases", ["version", "commit", "created (UTC)", "by", "running on"])
    for listed in found.releases:
        r = listed.release
        t.add_row(r.version, (r.commit or "")[:12], r.created_at.strftime("%Y-%m-%d %H:%M"), r.actor,
                  ", ".join(listed.running_on) or "-")
    out.print(t)


@app.command()
def approve(
    ctx: typer.Context,
    version: VersionArg,
    to: ToOpt = "production",
    key: KeyOpt = None,
    spec: SpecOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Approve a version for an env, signed with your SSH key (listed in the spec's approvers)."""
    from envplane.service import releases

    project, as_json = _project(ctx, spec, as_json)
    done = releases.approve(project, version, to, key=key, report=finished_only(as_json))
    if as_json:
        print_json(done.as_dict())
        return
    out.print(f"{escape(done.signer.names)} (key {done.signer.fingerprint}) approved {version} for {to}")


@app.command()
def gates(
    ctx: typer.Context,
    version: VersionArg,
    spec: SpecOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """The gate results of a version's latest promotion attempt, per env, and its approvals
    checked again now (signature, release, age) against the approvers file."""
    from envplane.service import releases

    project, as_json = _project(ctx, spec, as_json)
    found = releases.gates(project, version)
    if as_json:
        print_json(found.as_dict())
        return
    if not found.gates:
        out.print(f"no gates were evaluated for {version} yet (`envplane promote {version} --to ENV`)")
    else:
        t = table(f"{project.app} {version}: gates", ["env", "gate", "result", "detail", "at (UTC)"])
        for r in found.gates:
            t.add_row(r.env, r.gate, _result(r.ok), escape(r.detail),
                      r.at.strftime("%Y-%m-%d %H:%M:%S"))
        out.print(t)
    if found.approvals:
        t = table(f"{project.app} {version}: approvals, checked now",
                  ["env", "signed by", "key", "at (UTC)", "valid"])
        for env, a in found.approvals:
            t.add_row(env, escape(a.signer.names), a.signer.fingerprint, a.at.strftime("%Y-%m-%d %H:%M:%S"),
                      _result(True) if a.problem is None else f"[red]no[/]: {escape(a.problem)}")
        out.print(t)


@app.command()
def promote(
    ctx: typer.Context,
    version: VersionArg,
    to: ToOpt = "production",
    key: KeyOpt = None,
    timeout: TimeoutOpt = 120.0,
    no_wait: NoWaitOpt = False,
    spec: SpecOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Run the env's gates for a version; deploy that same release when every one passes.

    Where the env needs an approval, the request is signed with your key (--key)."""
    from envplane.service import releases

    project, as_json = _project(ctx, spec, as_json)

    def show(verdict: Verdict) -> None:
        if not as_json:
            failed = len(verdict.failed)
            _verdict_table(verdict, f"{version} → {to}: " + (f"refused, {failed} gate(s) failed"
                                                              if failed else "every gate passed"))

    releases.checked(project, version, to)  # before the progress drawing starts
    try:
        with drawing(err, as_json) as report:
            done = releases.promote(project, version, to, key=key, timeout=timeout, wait=not no_wait,
                                    report=report, on_verdict=show)
    except releases.PromotionRefused as refused:
        if as_json:
            print_json(refused.promotion.as_dict())
        else:
            err.print("[red]not promoted[/]: fix the failed gates and promote again")
        raise typer.Exit(1) from None
    if as_json:
        print_json(done.as_dict())
    elif done.deployed is not None:
        _print_deployed(done.deployed)


@app.command()
def rollback(
    ctx: typer.Context,
    env: Annotated[str, typer.Argument(help="The env to roll back.")],
    to: Annotated[str | None, typer.Option("--to", help="This release (default: the previous).")] = None,
    key: KeyOpt = None,
    yes: Annotated[bool, typer.Option("--yes", help="Roll back to a version that never passed the env's "
                                      "gates without asking (the audit log says so).")] = False,
    timeout: TimeoutOpt = 120.0,
    no_wait: NoWaitOpt = False,
    spec: SpecOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Return an env to its previous release (or --to VERSION), through the same switch.

    Where the env needs an approval, the request is signed with your key (--key). A version
    that never passed the env's gates needs a confirmation (or --yes)."""
    from envplane.service import releases

    project, as_json = _project(ctx, spec, as_json)
    releases.checked(project, to, env)  # before the progress drawing starts

    def attempt(confirmed: bool) -> Deployed:
        with drawing(err, as_json) as report:
            return releases.rollback(project, env, to, yes=confirmed, key=key, timeout=timeout,
                                     wait=not no_wait, report=report)

    deployed = confirming(attempt, yes, ask=not as_json)
    if as_json:
        print_json(deployed.as_dict())
        return
    _print_deployed(deployed)

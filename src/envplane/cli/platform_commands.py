"""`envplane platform up/down ENV`: PostgreSQL, Redis and S3 for an env, as an app of its own."""

from __future__ import annotations

from typing import Annotated

import typer

from envplane.cli.main import JsonOpt, app
from envplane.cli.output import err, report_error
from envplane.cli.progress import drawing, finished_only
from envplane.cli.run_commands import (
    NoWaitOpt,
    TimeoutOpt,
    YesOpt,
    confirming,
    print_down,
    print_partial,
    print_up,
)

platform_app = typer.Typer(help="The platform layer: PostgreSQL, Redis and S3 per env, for apps "
                           "whose env names no server.", no_args_is_help=True)
app.add_typer(platform_app, name="platform")

EnvsReq = Annotated[list[str], typer.Argument(help="One or more environments (docker test staging ...).",
                                              show_default=False)]


@platform_app.command("up")
def platform_up(envs: EnvsReq, timeout: TimeoutOpt = 120.0, no_wait: NoWaitOpt = False,
                as_json: JsonOpt = False) -> None:
    """Bring each env's platform up (its passwords are generated on first use) and wait until
    each server answers a request made with its admin credentials."""
    from envplane.service import platform

    with drawing(err, as_json) as report:
        done = platform.up(envs, timeout=timeout, wait=not no_wait, report=report)
    for started in done:
        print_up(started.up, as_json)


@platform_app.command("down")
def platform_down(
    envs: EnvsReq,
    purge: Annotated[bool, typer.Option("--purge", help="Also remove its data and secrets.")] = False,
    yes: YesOpt = False,
    no_wait: NoWaitOpt = False,
    as_json: JsonOpt = False,
) -> None:
    """Stop each env's platform; --purge also deletes its data."""
    from envplane.service import instances, platform

    def attempt(confirmed: bool) -> list[platform.PlatformDown]:
        return platform.down(envs, purge=purge, yes=confirmed, wait=not no_wait,
                             report=finished_only(as_json))

    try:
        done = confirming(attempt, yes)
    except instances.PartialPurge as partial:
        print_partial(partial, as_json)
    for stopped in done:
        if stopped.down is not None:
            print_down(stopped.down, as_json)
        elif stopped.nothing is not None and not stopped.secrets_removed:
            report_error(stopped.nothing, as_json)  # says so (exit 0), and the next env went on

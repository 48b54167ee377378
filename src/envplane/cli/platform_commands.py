"""`envplane platform up/down ENV`: PostgreSQL, Redis and S3 for an env, as an app of its own."""

from __future__ import annotations

import os
from types import ModuleType
from typing import Annotated

import typer

from envplane.cli.main import JsonOpt, app
from envplane.cli.output import err
from envplane.cli.run_commands import NoWaitOpt, TimeoutOpt, do_down, do_up
from envplane.spec.load import Project

platform_app = typer.Typer(help="The platform layer: PostgreSQL, Redis and S3 per env, for apps "
                           "whose env names no server.", no_args_is_help=True)
app.add_typer(platform_app, name="platform")

EnvReq = Annotated[str, typer.Argument(help="Environment (staging, production, test, ...).")]


def _platform() -> tuple[ModuleType, Project]:
    from envplane.platform import layer

    os.environ["ENVPLANE_SECRETS"] = "file"  # the platform keeps its admin secrets itself
    return layer, layer.open_platform(os.environ)


@platform_app.command("up")
def platform_up(env: EnvReq, timeout: TimeoutOpt = 120.0, no_wait: NoWaitOpt = False,
                as_json: JsonOpt = False) -> None:
    """Bring the env's platform up (its passwords are generated on first use)."""
    from envplane.target import resolve

    layer, project = _platform()
    made = layer.ensure_secrets(resolve(project, env), layer.store(project, os.environ))
    if made and not as_json:
        err.print(f"generated {len(made)} admin secret(s) under secret/data/platform/{env}/")
    do_up(project, env, None, None, None, timeout, no_wait, as_json)


@platform_app.command("down")
def platform_down(
    env: EnvReq,
    purge: Annotated[bool, typer.Option("--purge", help="Also remove its data and secrets.")] = False,
    no_wait: NoWaitOpt = False,
    as_json: JsonOpt = False,
) -> None:
    """Stop the env's platform; --purge also deletes its data."""
    layer, project = _platform()
    do_down(project, env, None, None, purge, no_wait, as_json)
    if purge:
        from envplane.target import resolve

        layer.store(project, os.environ).delete_tree(resolve(project, env).secrets_prefix)

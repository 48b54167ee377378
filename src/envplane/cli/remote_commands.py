"""`envplane remote ...`: ask an envplane server to run an operation, and follow it (issue 14).

For CI runners (the workflows of `envplane ci init github`): the server's URL comes from
ENVPLANE_SERVER (or --server), the token from ENVPLANE_TOKEN; the job's steps are drawn as
`envplane up` draws its own, and the exit code is the one the command would have on the
server (README: Exit codes).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.markup import escape

from envplane.cli.main import JsonOpt, _options, app
from envplane.cli.output import err, out, print_json
from envplane.cli.progress import drawing

if TYPE_CHECKING:
    from envplane.remote import Server

remote_app = typer.Typer(help="Run an operation on an envplane server (`envplane serve`) and follow it: "
                         "for CI runners, with ENVPLANE_SERVER and ENVPLANE_TOKEN.", no_args_is_help=True)
remote_previews = typer.Typer(help="Previews on the server: one per pull request.", no_args_is_help=True)
app.add_typer(remote_app, name="remote")
remote_app.add_typer(remote_previews, name="preview")

AppOpt = Annotated[str, typer.Option("--app", help="The app, as registered with the server.")]
ServerOpt = Annotated[str | None, typer.Option(
    "--server", help="The server's URL (default: $ENVPLANE_SERVER).", show_default=False)]
PrOpt = Annotated[int, typer.Option("--pr", help="Pull request number.", min=1)]
RefOpt = Annotated[str | None, typer.Option("--ref", help="The commit to deploy: the server's "
                                            "checkout's (default: it).", show_default=False)]


def _server(url: str | None) -> Server:
    from envplane.remote import Server

    return Server.from_environ(os.environ, url)


@contextmanager
def _following(as_json: bool) -> Iterator[Callable[[str, dict[str, Any]], None]]:
    from envplane.events import from_dict

    with drawing(err, as_json) as report:
        def on_event(kind: str, data: dict[str, Any]) -> None:
            event = from_dict(data)
            if event is not None:
                report(event)

        yield on_event


def _done(ctx: typer.Context, as_json: bool, result: Mapping[str, Any], line: str) -> None:
    if _options(ctx, None, as_json).json:
        print_json(dict(result))
    else:
        out.print(escape(line))


@remote_previews.command("up")
def remote_preview_up(ctx: typer.Context, app_name: AppOpt, pr: PrOpt, ref: RefOpt = None,
                      server: ServerOpt = None, as_json: JsonOpt = False) -> None:
    """Deploy a pull request's commit to its preview on the server."""
    from envplane import remote

    target = _server(server)
    with _following(_options(ctx, None, as_json).json) as follow:
        result = remote.preview_up(target, app_name, pr, ref, follow)
    _done(ctx, as_json, result, f"{app_name} pr-{pr} is up")


@remote_previews.command("down")
def remote_preview_down(ctx: typer.Context, app_name: AppOpt, pr: PrOpt, server: ServerOpt = None,
                        as_json: JsonOpt = False) -> None:
    """Remove a pull request's preview on the server (containers, data, database, bucket, secrets)."""
    from envplane import remote

    target = _server(server)
    with _following(_options(ctx, None, as_json).json) as follow:
        result = remote.preview_down(target, app_name, pr, follow)
    _done(ctx, as_json, result, f"{app_name} pr-{pr} is removed")


@remote_app.command("release")
def remote_release(ctx: typer.Context, app_name: AppOpt,
                   env: Annotated[str, typer.Argument(help="Where the new version goes first.")] = "staging",
                   ref: RefOpt = None, server: ServerOpt = None, as_json: JsonOpt = False) -> None:
    """Build the next version once on the server and deploy it (v1.0.44 -> v1.0.45)."""
    from envplane import remote

    target = _server(server)
    with _following(_options(ctx, None, as_json).json) as follow:
        result = remote.release(target, app_name, env, ref, follow)
    _done(ctx, as_json, result, f"released {result.get('version', '')} to {env}".replace("  ", " "))


@remote_app.command("promote")
def remote_promote(ctx: typer.Context, app_name: AppOpt,
                   version: Annotated[str, typer.Argument(help="A release version, e.g. v1.0.45.")],
                   to: Annotated[str, typer.Option("--to", help="The env it goes to.")] = "production",
                   server: ServerOpt = None, as_json: JsonOpt = False) -> None:
    """Run the env's gates on the server and deploy that same release when every one passes."""
    from envplane import remote

    target = _server(server)
    with _following(_options(ctx, None, as_json).json) as follow:
        result = remote.promote(target, app_name, version, to, follow)
    _done(ctx, as_json, result, f"promoted {version} to {to}")

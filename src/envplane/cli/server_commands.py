"""`envplane users`, `envplane tokens`, `envplane apps`: the server's people, API tokens and apps.

They write the server's state store (server/home.py) on the machine that runs `envplane serve`.
A password comes in on stdin or a hidden prompt, never as an argument (a command line is
visible to every user of the host and lands in shell history); a token is printed once.
"""

from __future__ import annotations

import getpass
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from envplane.cli.main import JsonOpt, app
from envplane.cli.output import err, out, print_json, table
from envplane.errors import NotFound, UsageError

if TYPE_CHECKING:  # the store loads SQLAlchemy: only the commands that use it pay for it
    from datetime import datetime

    from envplane.state.db import Store

users_app = typer.Typer(help="People who log in to `envplane serve` (dashboard, API).", no_args_is_help=True)
tokens_app = typer.Typer(help="API tokens of `envplane serve`, with scopes and an expiry.",
                         no_args_is_help=True)
apps_app = typer.Typer(help="The apps `envplane serve` serves.", no_args_is_help=True)
app.add_typer(users_app, name="users")
app.add_typer(tokens_app, name="tokens")
app.add_typer(apps_app, name="apps")

INVALID = "invalid: changed outside envplane"
ScopeOpt = Annotated[list[str] | None, typer.Option(
    "--scope", help="read, read:logs, deploy:ENV, approve:ENV or admin (ENV may hold * and ?); "
    "repeat for several.", show_default=False)]


def _store() -> Store:
    from envplane.server.home import open_server_store

    return open_server_store(os.environ)


def _actor() -> str:
    from envplane.state.audit import actor_from

    return actor_from(os.environ)


def _json(ctx: typer.Context, as_json: bool) -> bool:
    return as_json or bool(ctx.obj and ctx.obj.json)


def _password(name: str) -> str:
    """From a hidden prompt (asked twice) at a terminal, else the first line of stdin."""
    if sys.stdin.isatty():
        first = getpass.getpass(f"password for {name}: ")
        if getpass.getpass("again: ") != first:
            raise UsageError("the two passwords differ: nothing was changed", "type the same password twice")
        return first
    try:
        line = sys.stdin.buffer.readline().decode("utf-8")
    except UnicodeDecodeError:
        raise UsageError("the password on stdin is not UTF-8 text") from None
    password = line.rstrip("\r\n")
    if not password:
        raise UsageError("no password on stdin", f"echo \"$PASSWORD\" | envplane users add {name}, "
                         "or run it at a terminal to be asked")
    return password


# --- users ----------------------------------------------------------------------------------

@users_app.command("add")
def users_add(name: Annotated[str, typer.Argument(help="The user's name (their approvers-file principal).")],
              scope: ScopeOpt = None) -> None:
    """Add a user; the password comes from stdin or a hidden prompt. Default scope: read."""
    from envplane.secret import Secret
    from envplane.server import auth

    scopes = auth.parse_scopes(scope or ["read"])  # bad input is refused before a password is asked
    password = Secret(_password(name))
    added = auth.add_user(_store(), name, password, scopes, actor=_actor())
    err.print(f"added user {added.name} with scopes {' '.join(sorted(added.scopes))}")


@users_app.command("passwd")
def users_passwd(name: Annotated[str, typer.Argument(help="The user's name.")]) -> None:
    """Set a user's password (stdin or a hidden prompt)."""
    from envplane.secret import Secret
    from envplane.server import auth

    store = _store()
    if name not in {u.name for u in auth.list_users(store)}:  # before a password is asked
        raise NotFound(f"no user named {name}", "see `envplane users list`")
    auth.set_password(store, name, Secret(_password(name)), actor=_actor())
    err.print(f"set the password of {name}")


@users_app.command("remove")
def users_remove(name: Annotated[str, typer.Argument(help="The user's name.")]) -> None:
    """Remove a user; the tokens acting for them are revoked."""
    from envplane.server import auth

    auth.remove_user(_store(), name, actor=_actor())
    err.print(f"removed user {name}")


@users_app.command("approver-line")
def users_approver_line(name: Annotated[str, typer.Argument(help="The user's name.")]) -> None:
    """The line for an app's approvers file that lets the server sign approvals for NAME.

    Makes the server's signing key on first use ($ENVPLANE_SERVER_HOME/approval_ed25519)."""
    from envplane.server import approvals

    sys.stdout.write(approvals.approver_line(name, os.environ) + "\n")


@users_app.command("list")
def users_list(ctx: typer.Context, as_json: JsonOpt = False) -> None:
    """The server's users and their scopes (never a password or its hash)."""
    from envplane.server import auth

    users = auth.list_users(_store())
    if _json(ctx, as_json):
        print_json([u.as_dict() for u in users])
        return
    if not users:
        out.print("no users yet: `envplane users add NAME`")
        return
    t = table("users", ["name", "scopes", "created (UTC)", "state"])
    for u in users:
        t.add_row(u.name, " ".join(sorted(u.scopes)), u.created_at.strftime("%Y-%m-%d %H:%M"),
                  "ok" if u.sealed else INVALID)
    out.print(t)


# --- tokens ---------------------------------------------------------------------------------

@tokens_app.command("create")
def tokens_create(
    ctx: typer.Context,
    name: Annotated[str, typer.Option("--name", help="A name to list and revoke it by.")],
    scope: ScopeOpt = None,
    expires: Annotated[str, typer.Option("--expires", help="How long it lasts: 30d, 12h, 2w, or never.")]
    = "90d",
    user: Annotated[str | None, typer.Option("--user", help="The user it acts for (needed to approve).")]
    = None,
    as_json: JsonOpt = False,
) -> None:
    """Create an API token and print it, once: only its hash is kept."""
    from envplane.server import auth

    scopes = auth.parse_scopes(scope or [])
    info, raw = auth.create_token(_store(), name, scopes, auth.parse_expiry(expires), user=user,
                                  actor=_actor())
    if _json(ctx, as_json):
        print_json({**info.as_dict(), "token": raw.reveal()})
        return
    until = info.expires_at.strftime("%Y-%m-%d %H:%M UTC") if info.expires_at else "never"
    err.print(f"token {info.name}: scopes {' '.join(sorted(info.scopes))}; expires {until}")
    err.print("keep it now: it is not shown again (send it as `Authorization: Bearer TOKEN`)")
    sys.stdout.write(raw.reveal() + "\n")


@tokens_app.command("list")
def tokens_list(ctx: typer.Context, as_json: JsonOpt = False) -> None:
    """The tokens: name, scopes, state, expiry, last use (never the token)."""
    from envplane.server import auth

    tokens = auth.list_tokens(_store())
    if _json(ctx, as_json):
        print_json([t.as_dict() for t in tokens])
        return
    if not tokens:
        out.print("no tokens yet: `envplane tokens create --name NAME --scope SCOPE`")
        return

    t = table("tokens", ["name", "scopes", "user", "state", "expires (UTC)", "last used (UTC)"])
    for tok in tokens:
        t.add_row(tok.name, " ".join(sorted(tok.scopes)), tok.user or "-", tok.state(),
                  _when(tok.expires_at, "never"), _when(tok.last_used_at, "-"))
    out.print(t)


def _when(at: datetime | None, otherwise: str) -> str:
    return at.strftime("%Y-%m-%d %H:%M") if at else otherwise


@tokens_app.command("revoke")
def tokens_revoke(name: Annotated[str, typer.Argument(help="The token's name.")]) -> None:
    """Revoke a token: the next request with it is refused."""
    from envplane.server import auth

    auth.revoke_token(_store(), name, actor=_actor())
    err.print(f"revoked token {name}")


# --- apps -----------------------------------------------------------------------------------

@apps_app.command("add")
def apps_add(source: Annotated[str, typer.Argument(
                 help="The app's envplane.yaml or its folder, or a git URL to clone.",
                 metavar="PATH|GIT_URL")],
             spec: Annotated[str, typer.Option(
                 "--spec", help="With a git URL: the spec (or its folder) inside the repository.")] = "",
             ) -> None:
    """Register an app with the server (its spec is checked now and read at each request).
    A git URL is cloned into the server's home first; its `origin` is that URL."""
    from envplane.server import app_sources, apps

    if app_sources.is_git_url(source):
        err.print(f"cloning {app_sources.check_url(source)} …")
        folder, added = apps.add_from_git(_store(), source, spec, os.environ, actor=_actor())
        err.print(f"cloned {source} into {folder}")
    else:
        if spec:
            raise UsageError("--spec goes with a git URL",
                             f"give the spec's path itself: envplane apps add {source}")
        added = apps.add(_store(), Path(source), os.environ, actor=_actor())
    err.print(f"registered app {added.name} from {added.spec_path}")


@apps_app.command("list")
def apps_list(ctx: typer.Context, as_json: JsonOpt = False) -> None:
    """The registered apps and their specs."""
    from envplane.server import apps

    found = apps.list_apps(_store())
    if _json(ctx, as_json):
        print_json([a.as_dict() for a in found])
        return
    if not found:
        out.print("no apps registered yet: `envplane apps add PATH`")
        return
    t = table("apps", ["name", "spec", "state"])
    for a in found:
        t.add_row(a.name, str(a.spec_path), "ok" if a.sealed else INVALID)
    out.print(t)


@apps_app.command("remove")
def apps_remove(name: Annotated[str, typer.Argument(help="The app's name.")]) -> None:
    """Stop serving an app (its instances and state are left as they are)."""
    from envplane.server import apps

    apps.remove(_store(), name, actor=_actor())
    err.print(f"the server no longer serves {name}")

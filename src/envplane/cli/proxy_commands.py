"""`envplane proxy up/down/routes`: the host's Caddy that routes env domains."""

from __future__ import annotations

from dataclasses import asdict
from typing import TYPE_CHECKING, Annotated

import typer

from envplane.cli.main import JsonOpt, app
from envplane.cli.output import err, out, print_json, table

if TYPE_CHECKING:  # loaded by the commands that use them, not by every `envplane` start
    from envplane.backends.routing.caddy import CaddyAdmin

proxy = typer.Typer(help="The local reverse proxy (Caddy) that routes env domains to instances.",
                    no_args_is_help=True)
app.add_typer(proxy, name="proxy")

ListenOpt = Annotated[str | None, typer.Option(
    "--listen", envvar="ENVPLANE_CADDY_LISTEN", show_default=False,
    help="Where the proxy serves HTTP [default: where it last did, else 127.0.0.1:8088].")]
AdminOpt = Annotated[str, typer.Option("--admin", envvar="ENVPLANE_CADDY_ADMIN",
                                       help="Where Caddy's admin API listens.")]
DEFAULT_ADMIN_ADDRESS = "127.0.0.1:2019"  # caddy.DEFAULT_ADMIN without its scheme; shown by --help


def _client(admin: str) -> CaddyAdmin:
    from envplane.backends.routing.caddy import CaddyAdmin

    return CaddyAdmin(admin if "://" in admin else f"http://{admin}")


@proxy.command("up")
def proxy_up(listen: ListenOpt = None, admin: AdminOpt = DEFAULT_ADMIN_ADDRESS,
             as_json: JsonOpt = False) -> None:
    """Start Caddy unless it runs, and put back the route of every instance that is up."""
    from envplane.backends.routing import caddy_process
    from envplane.backends.routing.proxy import HostProxy

    state = HostProxy(_client(admin)).up(listen)
    if as_json:
        print_json({**asdict(state), "admin": admin, "folder": str(caddy_process.folder())})
        return
    verb = "started" if state.started else "already running"
    out.print(f"proxy {verb}: http://{state.listen} (admin {admin}, files in {caddy_process.folder()}); "
              f"{state.restored} instance route(s) restored")


@proxy.command("down")
def proxy_down(admin: AdminOpt = DEFAULT_ADMIN_ADDRESS) -> None:
    """Stop the proxy. The routes stay recorded: `proxy up` puts them back."""
    from envplane.backends.routing.proxy import HostProxy

    out.print("proxy stopped" if HostProxy(_client(admin)).down() else "proxy was not running")


@proxy.command("routes")
def proxy_routes(admin: AdminOpt = DEFAULT_ADMIN_ADDRESS, as_json: JsonOpt = False) -> None:
    """List the routes the proxy holds: one row per service (blue-green: both colours)."""
    from envplane.backends.routing.caddy import route_rows

    client = _client(admin)
    running = client.answers()
    rows = route_rows(client.routes()) if running else []
    if as_json:
        print_json([{**asdict(r), "hosts": list(r.hosts)} for r in rows])
        return
    if not running:  # nothing runs, so nothing is routed: an answer, not a failure
        out.print(f"the proxy does not run (no Caddy admin API at {admin}): it routes nothing")
        err.print("  [dim]hint:[/] `envplane proxy up` starts it with every recorded route")
        return
    if not rows:
        out.print("the proxy runs and holds no route")
        return
    t = table("proxy routes", ["id", "hosts", "path", "upstream"])
    for r in rows:
        t.add_row(r.id, ", ".join(r.hosts), r.path, r.upstream)
    out.print(t)

"""`envplane proxy up/down/routes`: the local Caddy that routes env domains."""

from __future__ import annotations

from typing import Annotated

import typer

from envplane.backends.routing import caddy_process
from envplane.backends.routing.caddy import CaddyAdmin
from envplane.cli.main import JsonOpt, app
from envplane.cli.output import out, print_json, table

proxy = typer.Typer(help="The local reverse proxy (Caddy) that routes env domains to instances.",
                    no_args_is_help=True)
app.add_typer(proxy, name="proxy")

ListenOpt = Annotated[str, typer.Option("--listen", help="Where the proxy serves HTTP.")]
AdminOpt = Annotated[str, typer.Option("--admin", help="Where Caddy's admin API listens.")]


@proxy.command("up")
def proxy_up(listen: ListenOpt = "127.0.0.1:8088", admin: AdminOpt = "127.0.0.1:2019") -> None:
    """Start Caddy (if it is not running); `up` and `down` then add and remove routes."""
    folder = caddy_process.start(listen, admin)
    out.print(f"proxy up: http://{listen} (admin {admin}, files in {folder})")


@proxy.command("down")
def proxy_down(admin: AdminOpt = "127.0.0.1:2019") -> None:
    """Stop the proxy."""
    out.print("proxy stopped" if caddy_process.stop(admin) else "proxy was not running")


@proxy.command("routes")
def proxy_routes(admin: AdminOpt = "127.0.0.1:2019", as_json: JsonOpt = False) -> None:
    """List the routes the proxy holds."""
    routes = CaddyAdmin(f"http://{admin}").routes()
    if as_json:
        print_json(routes)
        return
    t = table("proxy routes", ["id", "hosts", "paths", "upstream"])
    for r in routes:
        match = (r.get("match") or [{}])[0]
        upstream = r["handle"][0]["upstreams"][0]["dial"]
        t.add_row(str(r.get("@id", "")), ", ".join(match.get("host", [])),
                  ", ".join(match.get("path", ["/"])), upstream)
    out.print(t)

"""MCP over streamable HTTP at /mcp in `envplane serve` (issue 14): the tools of
server/mcp_tools.py for assistants that connect over the network, with the API's bearer
tokens and scopes.

Every request needs `Authorization: Bearer TOKEN` (401 without a valid one; the dashboard's
session does not count: an assistant is no browser). The SDK checks the Host and Origin
headers against DNS rebinding: localhost names are allowed, and the names in
ENVPLANE_ALLOWED_HOSTS (a reverse proxy's public name, e.g. `envplane.example.com`).
Its session manager runs in FastAPI's lifespan (a mounted app's own lifespan never runs).
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager
from typing import Any, Protocol

from fastapi import FastAPI
from mcp.server.mcpserver import Context
from mcp.server.mcpserver.exceptions import ToolError
from mcp.server.transport_security import TransportSecuritySettings
from starlette.requests import Request
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

from envplane.server.auth import Principal
from envplane.server.mcp_tools import Apps, build

PATH = "/mcp"
HOSTS_ENV = "ENVPLANE_ALLOWED_HOSTS"
LOCAL_HOSTS = ("127.0.0.1", "localhost", "[::1]")
_PRINCIPAL = "envplane.mcp.principal"  # where the gate leaves the caller, in the request's scope


class ServerContext(Protocol):
    """What the API keeps on app.state.envplane (server/api.py's Context)."""

    environ: Mapping[str, str]
    authenticate: Callable[[str], Principal | None]
    load_app: Callable[[str, Mapping[str, str]], Any]
    app_names: Callable[[], list[str]]


def mount(app: FastAPI) -> None:
    """Serve the MCP tools at /mcp of the app create_app made (its state holds the API's
    Context), the session manager started and stopped with the app."""
    context: ServerContext = app.state.envplane
    server = build(Apps(context.app_names, context.load_app, context.environ), _caller)
    endpoint = _Endpoint(context.authenticate)
    app.router.routes.append(Route(PATH, endpoint=endpoint, methods=["GET", "POST", "DELETE"],
                                   include_in_schema=False))
    inner = app.router.lifespan_context

    @asynccontextmanager
    async def lifespan(started: Any) -> AsyncIterator[Any]:
        # A session manager runs once: each start of the app (tests start one app several
        # times) gets a new one.
        asgi = server.streamable_http_app(streamable_http_path=PATH, stateless_http=True,
                                          transport_security=security(context.environ))
        async with server.session_manager.run():
            endpoint.inner = asgi
            try:
                async with inner(started) as state:
                    yield state
            finally:
                endpoint.inner = None

    app.router.lifespan_context = lifespan


def security(environ: Mapping[str, str]) -> TransportSecuritySettings:
    """The SDK's DNS-rebinding check: Host and Origin must name this server."""
    names = [*LOCAL_HOSTS, *(h.strip() for h in environ.get(HOSTS_ENV, "").split(",") if h.strip())]
    # a name without a port is allowed on any port, and without one (80, 443)
    hosts = [form for name in names
             for form in ([name] if re.fullmatch(r".+:\d+", name) else [name, f"{name}:*"])]
    return TransportSecuritySettings(
        enable_dns_rebinding_protection=True, allowed_hosts=hosts,
        allowed_origins=[f"{scheme}://{h}" for h in hosts for scheme in ("http", "https")])


def _caller(ctx: Context) -> Principal:
    """The caller the gate authenticated for this request."""
    request = ctx.request_context.request
    found = request.scope.get(_PRINCIPAL) if isinstance(request, Request) else None
    if found is None:  # the gate lets no request through without one
        raise ToolError("this request has no authenticated token")
    caller: Principal = found
    return caller


class _Endpoint:
    """The bearer-token gate in front of the SDK's streamable HTTP app."""

    def __init__(self, authenticate: Callable[[str], Principal | None]) -> None:
        self.authenticate = authenticate
        self.inner: ASGIApp | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        from starlette.concurrency import run_in_threadpool

        if self.inner is None:
            await _refused(503, "the MCP endpoint is starting or stopping")(scope, receive, send)
            return
        header = Request(scope).headers.get("authorization", "")
        kind, _, raw = header.partition(" ")
        caller = None
        if kind.lower() == "bearer" and raw.strip():
            caller = await run_in_threadpool(self.authenticate, raw.strip())
        if caller is None:
            said = "the token is unknown, expired or revoked" if header else \
                "this needs a token: Authorization: Bearer TOKEN"
            await _refused(401, said, {"WWW-Authenticate": 'Bearer realm="envplane"'})(scope, receive, send)
            return
        await self.inner({**scope, _PRINCIPAL: caller}, receive, send)



def _refused(status: int, detail: str, headers: Mapping[str, str] | None = None) -> ASGIApp:
    from starlette.responses import JSONResponse

    return JSONResponse({"status": status, "detail": detail}, status, headers=dict(headers or {}))

"""`envplane serve`'s application: the HTTP API, the webhook, and the other parts of the
server (dashboard, metrics and scheduler, MCP) in one FastAPI app.

- GET /healthz answers 200 with no token (a load balancer's or systemd's check);
- GET /api/openapi.json describes the API, with no token;
- /api/v1/... needs a bearer token (or the dashboard's session): server.api;
- POST /hooks/github/{app} takes GitHub's webhooks for an app (server.hooks).
Every error is problem+json (server.problems).
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import AsyncIterator, Iterator, Mapping
from contextlib import asynccontextmanager
from typing import Any

import anyio
import anyio.from_thread
import anyio.to_thread
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException
from starlette.routing import Match, Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from envplane import __version__
from envplane.errors import EnvplaneError, NotFound
from envplane.secret import mask_known
from envplane.server import api, mcp_http, metrics, problems, scheduler
from envplane.server.hooks import Hooks
from envplane.server.jobs import Jobs
from envplane.webhook import Answer, Receiver

log = logging.getLogger("envplane.server")
STOP_TIMEOUT = 600.0  # seconds the server waits at shutdown for running jobs to end
NAME = re.compile(api.NAME)
BODY_SECONDS = 15.0  # a webhook client's time to send its body, as `envplane webhook` gives it


def create_app(environ: Mapping[str, str] | None = None, *, context: api.Context | None = None) -> FastAPI:
    """The server for the state `environ` names (server.home: ENVPLANE_STATE_URL, else SQLite
    in ENVPLANE_SERVER_HOME)."""
    env = dict(os.environ if environ is None else environ)
    ctx = context or server_context(env)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        for job in ctx.jobs.interrupt_left():  # before any job of ours starts: a dead server's
            try:
                api.audit_job(ctx.load_app(job.app, ctx.environ), job, {})
            except EnvplaneError as error:  # an app since removed or broken: the job's own row says it
                log.warning("job %s of %s: no audit row for its end: %s", job.id, job.app,
                            mask_known(error.message))
        # --- the other parts of serve (#14) start here (scheduler, MCP session manager) ---
        jobs = scheduler.serve(scheduler.store_of(ctx), env)
        try:
            yield
        finally:
            # --- ... and stop here ---
            if jobs is not None:
                jobs.stop(STOP_TIMEOUT)
            hooks.stop(STOP_TIMEOUT)
            if not ctx.jobs.wait(STOP_TIMEOUT):
                log.warning("stopping with jobs still running: their instances' locks go stale")

    app = FastAPI(title="envplane", version=__version__, lifespan=lifespan, openapi_url="/api/openapi.json",
                  docs_url=None, redoc_url=None,  # Swagger UI loads its script from a CDN
                  description="The envplane server's API: every operation of the CLI for the apps "
                  "registered with `envplane apps add`. Authenticate with `Authorization: Bearer TOKEN` "
                  "(`envplane tokens create`). Errors are application/problem+json.")
    app.state.envplane = ctx
    app.add_middleware(BodyLimit)
    _problem_handlers(app)
    _openapi_with_problems(app)

    @app.get("/healthz", include_in_schema=True, summary="The server answers (no token needed)")
    def healthz() -> dict[str, str]:
        return {"status": "ok", "version": __version__}

    # HEAD too: many load balancers and uptime monitors check with it. A route of its own,
    # left out of the document: one route with both methods gives OpenAPI one operation id twice.
    @app.head("/healthz", include_in_schema=False)
    def healthz_head() -> dict[str, str]:
        return healthz()

    app.state.store = ctx.store  # the dashboard's sessions read users from it
    app.include_router(api.router)
    hooks = Hooks(env, lambda name: ctx.load_app(name, env), ctx.jobs)
    _github_hook(app, hooks)
    # --- the other parts of serve (#14) add their routers here, one line each ---
    app.include_router(metrics.router)  # /metrics, /api/v1/scheduler (jobs and alerts)
    _dashboard(app, ctx)
    mcp_http.mount(app)  # /mcp: wraps the lifespan above with the MCP session manager
    return app


MAX_BODY = 1024 * 1024  # bytes of a request's body; the webhook's route keeps its own bound


class TooLarge(HTTPException):
    def __init__(self) -> None:
        super().__init__(413, f"the request's body is larger than {MAX_BODY} bytes", {"Connection": "close"})


class BodyLimit:
    """Refuses (413) a body over MAX_BODY: FastAPI reads a body whole before it checks the
    token, so without this anyone could make the server hold any amount of memory. A declared
    length is refused before a byte is read; a streamed (chunked) body once it passes the bound."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"].startswith("/hooks/"):
            await self.app(scope, receive, send)
            return
        length = dict(scope["headers"]).get(b"content-length", b"0")
        if not length.isdigit() or len(length) > 18 or int(length) > MAX_BODY:
            if length.isdigit() and len(length) <= 18 and int(length) <= DRAIN:
                await _drain(receive)
            error = TooLarge()
            await _problem(413, problems.body(413, error.detail), error.headers)(scope, receive, send)
            return
        received = 0

        async def bounded() -> Message:
            nonlocal received
            message = await receive()
            received += len(message.get("body", b""))
            if received > MAX_BODY:
                if message.get("more_body", False):
                    await _drain(receive)
                raise TooLarge()  # the route's body reader lets an HTTPException through: a 413
            return message

        await self.app(scope, bounded, send)


DRAIN = 16 * 1024 * 1024  # bytes of a refused body read and dropped before the 413


async def _drain(receive: Receive) -> None:
    """Read and drop what the client sends anyway (DRAIN at most): a server that closes with
    unread bytes resets the connection, and the client loses the 413 it was answered."""
    drained = 0
    while drained <= DRAIN:
        message = await receive()
        if message["type"] != "http.request" or not message.get("more_body", False):
            return
        drained += len(message.get("body", b""))


def _dashboard(app: FastAPI, ctx: api.Context) -> None:
    """The dashboard's pages, and its login session accepted by the API (with its CSRF token
    on every request that changes something)."""
    from envplane.server import auth, dashboard

    def session_principal(request: Request) -> auth.Principal | None:
        found = dashboard.session_principal(request)
        return found if isinstance(found, auth.Principal) else None

    app.include_router(dashboard.router)
    ctx.session_principal = session_principal


class _Signed(Exception):
    """A request to an app that cannot take deliveries passed the signature check."""


def _github_hook(app: FastAPI, hooks: Hooks) -> None:
    # For a name that cannot take deliveries (not registered, not a git clone, a bad name):
    # the checks of a registered app's receiver, so a request not signed with the server's
    # secret is refused exactly as there, and a stranger cannot tell which apps exist.
    gatekeeper = _gatekeeper(hooks.environ)

    @app.post("/hooks/github/{name}", include_in_schema=False)
    async def github(name: str, request: Request) -> JSONResponse:
        """GitHub's webhook for the app `name` (README: envplane serve, webhooks)."""
        why: JSONResponse | None = None  # what a signed request hears when the app cannot take it
        try:
            if not NAME.match(name):
                raise NotFound(f"no app may be named {name!r}")
            receiver = await anyio.to_thread.run_sync(hooks.receiver, name)
        except EnvplaneError as error:  # not registered, no secret, not a git clone: GitHub shows it
            why = _hook_answer(404, {"error": mask_known(error.message), "hint": mask_known(error.hint)})
            if gatekeeper is None:  # no secret: every name answers this same 404
                return why
            receiver = gatekeeper

        def read(size: int) -> bytes:
            # Called by the receiver only once the Content-Length was checked (at most MAX_BODY);
            # the server reads no more than that length, and waits for it BODY_SECONDS at most.
            return anyio.from_thread.run(_body, request)[:size]

        def take() -> Answer:
            try:
                return receiver.receive(dict(request.headers), request.headers.get("content-length"), read,
                                        request.client.host if request.client else "?")
            except _Signed:
                raise
            except Exception as error:  # e.g. the state store is down: GitHub sees a failed delivery
                receiver.write(f"webhook: could not take a request: {type(error).__name__}: {error}")
                return Answer(500, {"error": "the webhook could not take this delivery; see its log"})

        try:
            answer = await anyio.to_thread.run_sync(take)
        except _Signed:  # GitHub's (or the operator's) request: it hears why
            assert why is not None
            return why
        return _hook_answer(answer.status, answer.body)


def _gatekeeper(environ: Mapping[str, str]) -> Receiver | None:
    """A receiver with the server's secret that raises _Signed for a request it would take."""
    from envplane.secret import Secret
    from envplane.server.hooks import SECRET_ENV
    from envplane.spec.models import WebhookSpec

    value = environ.get(SECRET_ENV)
    if not value:
        return None

    def signed(delivery: str) -> bool:
        raise _Signed

    return Receiver(Secret(value), WebhookSpec(), signed, lambda action: None, lambda refusal: None,
                    logging.getLogger("envplane.webhook").info)


async def _body(request: Request) -> bytes:
    """The request's body, or nothing when its client is too slow to send it (the receiver
    then refuses the request as shorter than its Content-Length)."""
    with anyio.move_on_after(BODY_SECONDS):
        return await request.body()
    return b""


def _hook_answer(status: int, body: dict[str, Any]) -> JSONResponse:
    # An unread body must not be read as the next request: a refusal closes the connection.
    return JSONResponse(body, status, headers={"Connection": "close"} if status >= 400 else None)


def server_context(environ: Mapping[str, str]) -> api.Context:
    """The routes' view of the server's state: its store, its tokens, its registered apps."""
    from envplane.server import apps, auth, home

    store = home.open_server_store(environ)
    return api.Context(environ=environ, jobs=Jobs(store=store), store=store,
                       authenticate=lambda raw: auth.authenticate_token(store, raw),
                       load_app=lambda name, env: apps.load(store, name, env),
                       app_names=lambda: [a.name for a in apps.list_apps(store)])


def _openapi_with_problems(app: FastAPI) -> None:
    made = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = problems.documented(made())
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]  # FastAPI's documented way to customise it


def _allowed(request: Request, said: str = "") -> str:
    """Every method of the path: Starlette names only those of the first route that matched
    it (GET and POST of /api/v1/apps/{app}/releases are two routes)."""
    methods = {m.strip() for m in said.split(",") if m.strip()}
    for route in _routes(request.app.router.routes):
        if route.methods and route.matches(request.scope)[0] != Match.NONE:
            methods |= route.methods
    return ", ".join(sorted(methods))


def _routes(routes: list[Any]) -> Iterator[Any]:
    """Every route, those of included routers too: FastAPI 0.165 nests them (its Allow went
    empty), older ones list them flat."""
    try:
        from fastapi.routing import iter_route_contexts
    except ImportError:
        return (r for r in routes if isinstance(r, Route))
    return iter(iter_route_contexts(routes))


def _problem(status: int, document: dict[str, Any], headers: Mapping[str, str] | None = None) -> JSONResponse:
    return JSONResponse(document, status, headers=dict(headers or {}), media_type=problems.MEDIA_TYPE)


def _problem_handlers(app: FastAPI) -> None:
    @app.exception_handler(EnvplaneError)
    async def envplane_error(request: Request, error: EnvplaneError) -> JSONResponse:
        document = problems.of_error(error)
        return _problem(document["status"], document)

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, error: HTTPException) -> JSONResponse:
        headers = dict(getattr(error, "headers", None) or {})
        if error.status_code == 405:
            headers["Allow"] = _allowed(request, headers.get("Allow", ""))
        return _problem(error.status_code, problems.body(error.status_code, str(error.detail)), headers)

    @app.exception_handler(RequestValidationError)
    async def bad_request(request: Request, error: RequestValidationError) -> JSONResponse:
        found = [{"message": str(e.get("msg", "")), "file": None, "line": None,
                  "field": ".".join(str(p) for p in e.get("loc", ())), "hint": ""} for e in error.errors()]
        first = found[0] if found else {"field": "", "message": "bad request"}
        detail = f"{first['field']}: {first['message']}" if first["field"] else str(first["message"])
        return _problem(422, problems.body(422, detail, "see the API's schema: GET /api/openapi.json",
                                           "invalid-request", found))

    @app.exception_handler(Exception)
    async def internal(request: Request, error: Exception) -> JSONResponse:
        log.exception("%s %s failed", request.method, request.url.path)
        return _problem(500, problems.body(500, f"internal error: {type(error).__name__}",
                                           "the server's log has the traceback; please report it"))

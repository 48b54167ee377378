"""The web dashboard: server-rendered pages (Jinja2) with htmx served from the package.

Every page reads without JavaScript; htmx only streams a log and refreshes what changes.
People log in with their server password (server.auth.check_password); a session is a
signed HttpOnly cookie (web_session) and every form carries a CSRF token. Data comes from
envplane.service and the server's registry of apps; nothing here decides a rule.

`router` is included by server.app.create_app, which keeps on `app.state` the server's
store and environment (`store`, `environ`); a bare app gets them from
server.home.open_server_store on first use.
"""

from __future__ import annotations

import os
import threading
from collections.abc import AsyncIterator, Callable, Coroutine, Iterable, Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from fastapi import APIRouter, Form, Request
from fastapi.responses import FileResponse, HTMLResponse, RedirectResponse, Response, StreamingResponse
from fastapi.routing import APIRoute
from fastapi.templating import Jinja2Templates
from markupsafe import escape
from pydantic import ValidationError

from envplane.errors import EnvplaneError, NothingToDo, UsageError
from envplane.secret import Secret, mask_known
from envplane.server import web_session
from envplane.server.log_stream import KEEP_ALIVE, LogSource, sse_events
from envplane.server.web_session import Sessions, WebSession

if TYPE_CHECKING:
    from envplane.server.auth import Principal
    from envplane.service.status import ServiceState
    from envplane.spec.load import Project
    from envplane.state.audit import AuditEntry
    from envplane.state.db import Store

HERE = Path(__file__).parent
templates = Jinja2Templates(directory=HERE / "templates")


class Refused(Exception):
    """A page that cannot be shown: to the login page (303), or an error page."""

    def __init__(self, status: int, message: str, hint: str = "", location: str = "") -> None:
        super().__init__(message)
        self.status, self.message, self.hint, self.location = status, message, hint, location


class _Route(APIRoute):
    """Turns Refused and EnvplaneError into the dashboard's own pages (HTML, not JSON); a page
    answers HEAD as GET (uvicorn sends no body), which FastAPI's GET routes refused with 405.
    A live stream does not: its HEAD would hold a connection open for nothing."""

    def __init__(self, path: str, endpoint: Callable[..., Any], **kwargs: Any) -> None:
        super().__init__(path, endpoint, **kwargs)
        if self.methods and "GET" in self.methods and not path.endswith("/stream"):
            self.methods.add("HEAD")

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def route(request: Request) -> Response:
            try:
                return await handler(request)
            except Refused as refused:
                if refused.location:
                    return RedirectResponse(refused.location, status_code=303)
                return error_page(request, refused.status, refused.message, refused.hint)
            except EnvplaneError as error:
                return error_page(request, status_of(error), error.message, error.hint)
            except ValidationError as error:  # a form's value the API's request model refuses
                first = error.errors()[0]
                field = ".".join(str(p) for p in first.get("loc", ()))
                return error_page(request, 400, f"{field}: {first.get('msg', 'not valid')}".strip(": "))

        return route


router = APIRouter(include_in_schema=False, route_class=_Route)

# The files /static/ serves, by name: nothing else is reachable under it.
STATIC = {
    "htmx.min.js": ("vendor/htmx.min.js", "text/javascript"),
    "htmx-ext-sse.js": ("vendor/htmx-ext-sse.js", "text/javascript"),
    "dashboard.js": ("dashboard.js", "text/javascript"),
    "dashboard.css": ("dashboard.css", "text/css"),
}
# Scripts from this server only, no inline code, no eval (htmx is told so in base.html);
# no frames, forms post only here.
SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; script-src 'self'; style-src 'self'; "
                               "img-src 'self'; frame-ancestors 'none'; form-action 'self'; "
                               "base-uri 'none'; object-src 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "X-Frame-Options": "DENY",
    "Cache-Control": "no-store",
}
CSRF_HEADER = "X-CSRF-Token"
_lock = threading.Lock()


# -- the server's state, sessions and who is signed in ------------------------------------
def environ_of(request: Request) -> Mapping[str, str]:
    """The server's environment: create_app's (its api.Context), else the app's `environ`."""
    context = getattr(request.app.state, "envplane", None)
    found = getattr(context, "environ", None) or getattr(request.app.state, "environ", None)
    return found if found is not None else os.environ


def store_of(request: Request) -> Store:
    """The server's store (create_app keeps it on app.state; a bare app opens it once)."""
    state = request.app.state
    with _lock:
        store = getattr(state, "store", None)
        if store is None:
            from envplane.server.home import open_server_store

            store = state.store = open_server_store(environ_of(request))
    return store


def sessions_of(request: Request) -> Sessions:
    state = request.app.state
    with _lock:
        sessions = getattr(state, "web_sessions", None)
        if sessions is None:
            sessions = state.web_sessions = Sessions()
    return sessions


def session_of(request: Request) -> WebSession | None:
    """The request's live dashboard session, if any (the API accepts it too), with its user's
    scopes as the server holds them now: a user removed since the login has no session, and
    a scope taken away is gone at once."""
    from envplane.server import auth

    sessions, cookie = sessions_of(request), request.cookies.get(web_session.COOKIE)
    session = sessions.find(cookie)
    if session is None:
        return None
    # None: removed, its row forged, or a new password since the login
    user = auth.user_principal(store_of(request), session.principal.name, session.stamp)
    if user is None:
        sessions.end(cookie)
        return None
    return replace(session, principal=user)


def session_principal(request: Request) -> Principal | None:
    """The principal of the request's dashboard session, for the API (its
    `session_principal`). A request that changes something (not GET, HEAD or OPTIONS) must
    carry the session's CSRF token in the X-CSRF-Token header, as the dashboard's own forms
    carry it in a field: a cookie alone authorises no change."""
    session = session_of(request)
    if session is None:
        return None
    if request.method not in ("GET", "HEAD", "OPTIONS") and \
            not sessions_of(request).csrf_ok(session, request.headers.get(CSRF_HEADER)):
        return None
    return session.principal


def signed_in(request: Request, action: str = "read", env: str | None = None) -> WebSession:
    """The session of a page's request: no session goes to the login page (303), a principal
    whose scopes do not allow `action` gets 403."""
    session = session_of(request)
    if session is None:
        back = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        raise Refused(303, "log in first", location=f"/login?next={quote(back)}")
    app = request.path_params.get("app")  # an app-bound scope (deploy:APP/ENV) holds on its app only
    if not session.principal.may(action, env, app):
        raise Refused(403, f"{session.principal.name} may not {action}" + (f" on {env}" if env else "")
                      + (f" of app {app}" if app and action in ("deploy", "approve") else ""),
                      "an admin grants scopes: `envplane users` on the server")
    return session


def checked_form(request: Request, session: WebSession, token: str | None) -> None:
    """A form of this session, posted from this site: else 403 and nothing changes."""
    if not sessions_of(request).csrf_ok(session, token):
        raise Refused(403, "the form's CSRF token is missing or wrong: nothing was done",
                      "reload the page and submit the form again")


def safe_next(target: str | None) -> str:
    """Where to go after login: a path of this site only (no //host, no scheme)."""
    if not target or not target.startswith("/") or target.startswith(("//", "/\\")) or "\n" in target:
        return "/"
    return target


def page(request: Request, name: str, session: WebSession | None, status_code: int = 200,
         secrets: Iterable[Secret] = (), **values: Any) -> HTMLResponse:
    """A page, with every secret value of the apps it shows masked (as written and as HTML
    escapes it): a container's health answer or a step's detail may hold one."""
    context = {"request": request, "session": session, "user": session.principal.name if session else None,
               "csrf": session.csrf if session else "", "alerts": alerts_of(request) if session else [],
               **values}
    html = masked_html(templates.get_template(name).render(context), secrets)
    return HTMLResponse(html, status_code, headers=SECURITY_HEADERS)


def alerts_of(request: Request) -> list[Any]:
    """What the scheduler says is wrong now (a job failed, is late, never ran; a DR alarm):
    a banner on every page, never silence."""
    from envplane.server import scheduler

    try:
        return list(scheduler.alerts(store_of(request), environ_of(request)))
    except EnvplaneError as error:  # the page still shows; the banner says why there is none
        return [scheduler.Alert("store", "scheduler", "-", "failed", f"cannot read the scheduler's state: "
                                f"{error.message}", None)]


def masked_html(text: str, secrets: Iterable[Secret]) -> str:
    known = list(secrets)
    return mask_known(text, [*known, *(str(escape(s.reveal())) for s in known)])


def secrets_of(*projects: Project | None) -> list[Secret]:
    """Every secret value the apps' stores hold."""
    from envplane.service.secrets import app_secrets

    return [s for p in projects if p is not None for s in app_secrets(p)]


def error_page(request: Request, status: int, message: str, hint: str = "") -> HTMLResponse:
    titles = {400: "Bad request", 403: "Not allowed", 404: "Not found", 409: "Refused", 429: "Too many tries"}
    return page(request, "error.html", session_of(request), status, status=status,
                title=titles.get(status, "Failed"), message=mask_known(message), hint=mask_known(hint))


def status_of(error: EnvplaneError) -> int:
    """The HTTP status of an error, as the API answers it (server.problems)."""
    from envplane.server import problems

    return problems.status_of(error)


# -- login ----------------------------------------------------------------------------------
@router.get("/login", response_class=HTMLResponse)
def login_page(request: Request, next: str = "/") -> HTMLResponse:
    return _login_form(request, safe_next(next))


def _login_form(request: Request, next_path: str, error: str = "", user: str = "",
                status: int = 200) -> HTMLResponse:
    cookie, token = sessions_of(request).login_form()
    response = page(request, "login.html", None, status, next=next_path, error=error, login_token=token,
                    login_user=user)
    response.set_cookie(web_session.LOGIN_COOKIE, cookie, max_age=int(web_session.LOGIN_TTL),
                        httponly=True, samesite="strict", secure=_secure(request), path="/login")
    return response


@router.post("/login", response_model=None)
def login(request: Request, user: str = Form(""), password: str = Form(""), csrf: str = Form(""),
          next: str = Form("/")) -> Response:
    from envplane.server.auth import check_password, password_stamp

    sessions = sessions_of(request)
    target = safe_next(next)
    if not sessions.login_token_ok(request.cookies.get(web_session.LOGIN_COOKIE), csrf):
        return _login_form(request, target, "The login form expired or did not come from this site: "
                           "try again.", user, 403)
    client = request.client.host if request.client else ""
    wait = sessions.refused(client, user)
    if wait:
        return _login_form(request, target, f"Too many failed logins for this name from here: try again in "
                           f"{int(wait // 60) + 1} min.", user, 429)
    principal = check_password(store_of(request), user, password) if user and password else None
    if principal is None:
        sessions.failed(client, user)
        return _login_form(request, target, "Wrong user name or password.", user, 401)
    sessions.succeeded(client, user)
    _, cookie = sessions.start(principal, password_stamp(store_of(request), principal.name))
    response = RedirectResponse(target, status_code=303)
    response.set_cookie(web_session.COOKIE, cookie, max_age=int(sessions.ttl), httponly=True,
                        samesite="strict", secure=_secure(request), path="/")
    response.delete_cookie(web_session.LOGIN_COOKIE, path="/login")
    return response


@router.post("/logout", response_model=None)
def logout(request: Request, csrf: str = Form("")) -> Response:
    session = signed_in(request, "read")
    checked_form(request, session, csrf)
    sessions_of(request).end(request.cookies.get(web_session.COOKIE))
    response = RedirectResponse("/login", status_code=303)
    response.delete_cookie(web_session.COOKIE, path="/")
    return response


def _secure(request: Request) -> bool:
    """Cookies are Secure when the browser speaks HTTPS to us (behind a TLS proxy too)."""
    return request.url.scheme == "https" or request.headers.get("x-forwarded-proto") == "https"


# -- static files ---------------------------------------------------------------------------
@router.get("/static/{name}", response_model=None)
def static(name: str) -> Response:
    found = STATIC.get(name)
    if found is None:
        raise Refused(404, f"no file {name} here")
    path, media = found
    return FileResponse(HERE / "static" / path, media_type=media,
                        headers={"Cache-Control": "public, max-age=3600",
                                 "X-Content-Type-Options": "nosniff"})


# -- the ladder -----------------------------------------------------------------------------
@dataclass(frozen=True)
class Rung:
    """One env instance of an app as the ladder shows it."""

    env: str
    instance: str
    status: str  # what the state store says of it (ok, failed, down, ...), or "running"
    version: str | None
    health: str  # healthy, unhealthy, starting, stopped, unknown
    urls: Mapping[str, str]
    created_at: datetime | None
    deployed_at: datetime | None
    host: str
    services: tuple[ServiceState, ...] = ()


@dataclass(frozen=True)
class Ladder:
    app: str
    envs: tuple[tuple[str, tuple[Rung, ...]], ...]  # in the ladder's order
    error: str = ""  # why the app could not be read (its spec, the engine)
    hint: str = ""
    waiting: tuple[Any, ...] = ()  # service.approvals.Waiting: releases that wait for an approval


def registered_apps(request: Request) -> list[tuple[str, Project | None, EnvplaneError | None]]:
    """Every app registered with the server, loaded, or the error that stopped its loading."""
    from envplane.server import apps

    store, environ = store_of(request), environ_of(request)
    found: list[tuple[str, Project | None, EnvplaneError | None]] = []
    for registered in apps.list_apps(store):
        try:
            found.append((registered.name, apps.load(store, registered.name, environ), None))
        except EnvplaneError as error:
            found.append((registered.name, None, error))
    return found


def app_project(request: Request, name: str) -> Project:
    from envplane.server import apps

    return apps.load(store_of(request), name, environ_of(request))


def ladder_of(project: Project, environ: Mapping[str, str]) -> Ladder:
    """The app's envs in ladder order, each with its instances: what runs (from the engines)
    joined with what the state store recorded."""
    from envplane import lifecycle
    from envplane.service import approvals, status

    try:
        states = status.of_containers(project)
        records = lifecycle.records(project, environ)
        waiting = tuple(approvals.pending(project))
    except EnvplaneError as error:
        return Ladder(project.app, (), error.message, error.hint)
    by_instance: dict[tuple[str, str], list[ServiceState]] = {}
    for s in states:
        by_instance.setdefault((s.env, s.instance), []).append(s)
    known = {(r.env, r.instance): r for r in records}
    rungs: dict[str, list[Rung]] = {name: [] for name in project.envs}
    for key in sorted(set(by_instance) | {k for k, r in known.items() if r.status not in ("down", "purged")}):
        env, instance = key
        if env not in rungs:
            continue  # an env the spec no longer has
        rungs[env].append(_rung(project, env, instance, tuple(by_instance.get(key, ())), known.get(key)))
    return Ladder(project.app, tuple((name, tuple(found)) for name, found in rungs.items()), waiting=waiting)


def _rung(project: Project, env: str, instance: str, services: tuple[ServiceState, ...],
          record: Any) -> Rung:
    from envplane.names import Instance
    from envplane.target import resolve

    urls: Mapping[str, str] = {}
    host = "local"
    try:
        which = Instance.from_id(env, instance)
        target = resolve(project, env, which.pr, which.run)
        host = target.engine.name if not target.engine.local else "local"
        if services:
            urls = target.urls()
    except EnvplaneError:
        pass  # a rung is shown even when its instance no longer resolves (a PR number gone)
    versions = sorted({s.version for s in services if s.version})
    return Rung(env, instance, record.status if record is not None else "running",
                ", ".join(versions) or None, _health(services), urls,
                record.created_at if record is not None else None,
                record.last_deploy_at if record is not None else None, host, services)


def _health(services: tuple[ServiceState, ...]) -> str:
    if not services:
        return "stopped"
    if any(s.state != "running" for s in services) or any(s.health == "unhealthy" for s in services):
        return "unhealthy"
    if any(s.health == "starting" for s in services):
        return "starting"
    return "healthy" if all(s.health == "healthy" for s in services) else "unknown"


def age(moment: datetime | None, now: datetime | None = None) -> str:
    """How long ago, in the largest whole unit: "3 min", "2 h", "5 d"."""
    if moment is None:
        return "-"
    seconds = ((now or datetime.now(UTC)) - (moment if moment.tzinfo else moment.replace(tzinfo=UTC))
               ).total_seconds()
    if seconds < 60:
        return f"{max(0, int(seconds))} s"
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if seconds >= size:
            return f"{int(seconds // size)} {unit}"
    return "-"


def span(every: timedelta | None) -> str:
    """A job's interval: `1h`, `2d3h`; `off` when it does not run."""
    from envplane.dr.schedule import span as spanned

    return "off" if every is None else spanned(every)


templates.env.filters["age"] = age
templates.env.filters["span"] = span


@router.get("/", response_class=HTMLResponse)
def ladder_page(request: Request) -> HTMLResponse:
    session = signed_in(request, "read")
    ladders = []
    found = registered_apps(request)
    for name, project, error in found:
        if project is None:
            ladders.append(Ladder(name, (), error.message if error else "", error.hint if error else ""))
        else:
            ladders.append(ladder_of(project, environ_of(request)))
    return page(request, "ladder.html", session, secrets=secrets_of(*(p for _, p, _ in found)),
                ladders=ladders, active="ladder")


# -- an instance ----------------------------------------------------------------------------
@router.get("/apps/{app}/instances/{env}/{instance}", response_class=HTMLResponse)
def instance_page(request: Request, app: str, env: str, instance: str) -> HTMLResponse:
    from envplane.service import instances

    session = signed_in(request, "read", env)
    project = app_project(request, app)
    project.env(env)  # an unknown env: 400 with the known ones
    environ = environ_of(request)
    ladder = ladder_of(project, environ)
    rung = next((r for name, rungs in ladder.envs if name == env for r in rungs if r.instance == instance),
                None)
    return page(request, "instance.html", session, secrets=secrets_of(project), app=project.app, env=env,
                instance=instance, rung=rung,
                ladder_error=ladder.error, deployments=instances.deployments(project, env, instance),
                may_logs=session.principal.may("read:logs", env))


# -- logs -----------------------------------------------------------------------------------


def log_lines(project: Project, env: str, instance: str, service: str, follow: bool) -> LogSource:
    """A service's log lines, masked (the last 200, then new ones while `follow`)."""
    from envplane.names import Instance
    from envplane.service import logs as service_logs

    which = Instance.from_id(env, instance)
    runtime = project.env(env).runtime
    if runtime != "compose":
        raise UsageError(f"the dashboard shows logs of compose envs; {env} runs on {runtime}",
                         f"`envplane logs {env} {service}` on the server")
    return LogSource.of(service_logs.reader(project, env, service, which.pr, which.run, follow=follow))


def _log_html(lines: list[str], skipped: int) -> str:
    html = [f'<span class="line skipped">… {skipped} lines skipped to keep up</span>'] if skipped else []
    return "".join(html + [f'<span class="line">{escape(line)}</span>' for line in lines])


@router.get("/apps/{app}/instances/{env}/{instance}/logs/{service}/stream", response_model=None)
async def log_stream(request: Request, app: str, env: str, instance: str, service: str) -> Response:
    """The service's log as Server-Sent Events: each event (`line`) is a batch of lines as
    HTML, escaped; `end` when the container's log ends."""
    from starlette.concurrency import run_in_threadpool

    await run_in_threadpool(signed_in, request, "read:logs", env)
    project = await run_in_threadpool(app_project, request, app)
    source = await run_in_threadpool(log_lines, project, env, instance, service, True)

    events = sse_events(
        source, request, _log_event, ended=_sse("end", '<span class="line ended">— the log ended —</span>'),
        allowed=lambda: still_allowed(request, "read:logs", env),
        refused=_sse("end", '<span class="line ended">— the session ended —</span>'))
    return StreamingResponse(events, media_type="text/event-stream",
                             headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"})


def _log_event(lines: list[str], skipped: int) -> str:
    return _sse("line", _log_html(lines, skipped))


def still_allowed(request: Request, action: str, env: str | None) -> bool:
    """Whether the session of a long stream still exists and may still do `action` (a user
    logged out, removed or stripped of the scope stops watching within RECHECK seconds)."""
    session = session_of(request)
    return session is not None and session.principal.may(action, env, request.path_params.get("app"))


def _sse(event: str, data: str) -> str:
    body = "".join(f"data: {line}\n" for line in data.split("\n"))
    return f"event: {event}\n{body}\n"


@router.get("/apps/{app}/instances/{env}/{instance}/logs/{service}", response_model=None)
def log_text(request: Request, app: str, env: str, instance: str, service: str) -> Response:
    """The last 200 lines as plain text: the log without JavaScript."""
    signed_in(request, "read:logs", env)
    source = log_lines(app_project(request, app), env, instance, service, False)
    try:
        lines = source.all()
    finally:
        source.close()
    return Response("\n".join(lines) + "\n", media_type="text/plain; charset=utf-8", headers=SECURITY_HEADERS)


# -- previews -------------------------------------------------------------------------------
@dataclass(frozen=True)
class PreviewRow:
    pr: str
    status: str
    ref: str | None
    by: str | None  # who deployed it last
    deployed_at: datetime | None
    closed_at: datetime | None
    ttl_left: str  # until gc collects it, once its PR closed


@router.get("/apps/{app}/previews", response_class=HTMLResponse)
def previews_page(request: Request, app: str) -> HTMLResponse:
    from envplane import preview
    from envplane.service import instances, previews

    session = signed_in(request, "read")
    project = app_project(request, app)
    found = previews.list_previews(project)
    ttl = project.envs[found.env].ttl or "7d"
    now = datetime.now(UTC)
    rows = []
    for p in found.previews:
        if p.status == "purged":
            continue
        last = instances.deployments(project, found.env, p.instance, limit=1)
        left = "-" if p.closed_at is None else _left(_utc(p.closed_at) + preview.duration(ttl) - now)
        rows.append(PreviewRow(p.instance.removeprefix("pr-"), p.status, p.ref,
                               last[0].actor if last else None, p.last_deploy_at, p.closed_at, left))
    return page(request, "previews.html", session, secrets=secrets_of(project), app=project.app,
                env=found.env, rows=rows, ttl=ttl)


def _utc(moment: datetime) -> datetime:
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _left(delta: timedelta) -> str:
    if delta.total_seconds() <= 0:
        return "due: the next gc collects it"
    return age(datetime.now(UTC) - delta)


# -- releases -------------------------------------------------------------------------------
@router.get("/apps/{app}/releases", response_class=HTMLResponse)
def releases_page(request: Request, app: str) -> HTMLResponse:
    from envplane.service import releases

    session = signed_in(request, "read")
    project = app_project(request, app)
    rows = [(listed.release, listed.placed) for listed in releases.list_releases(project).releases]
    return page(request, "releases.html", session, secrets=secrets_of(project), app=project.app, rows=rows)


@router.get("/apps/{app}/releases/{version}", response_class=HTMLResponse)
def release_page(request: Request, app: str, version: str, approved: str = "") -> HTMLResponse:
    from envplane.release import flow
    from envplane.service import approvals, releases

    session = signed_in(request, "read")
    project = app_project(request, app)
    shown = releases.show(project, version)
    # per env behind an approval gate: the approvals as they count now (signature, release, age)
    gated = {name: approvals.promotion(project, version, name) for name, cfg in project.envs.items()
             if flow.only_through_gates(cfg)}
    by_env: dict[str, list[Any]] = {}
    for g in shown.gates:
        by_env.setdefault(g.env, []).append(g)
    promotable = [name for name, cfg in project.envs.items()
                  if cfg.promote_from is not None and session.principal.may("deploy", name, project.app)]
    return page(request, "release.html", session, secrets=secrets_of(project), app=project.app,
                release=shown.release, gates=by_env, gated=gated, placed=shown.placed,
                approvable=[e for e in gated if session.principal.may("approve", e, project.app)],
                promotable=promotable,
                message=f"You approved {version} for {approved}." if approved in gated else "")


# -- audit log ------------------------------------------------------------------------------
@router.get("/audit", response_class=HTMLResponse)
def audit_page(request: Request, limit: int = 100) -> HTMLResponse:
    from envplane.service import audit

    session = signed_in(request, "read")
    logs: list[tuple[str, audit.Verified | None, list[AuditEntry], str]] = []
    found = registered_apps(request)
    for name, project, error in found:
        if project is None:
            logs.append((name, None, [], error.message if error else ""))
            continue
        try:
            read = audit.checked_log(project, max(1, min(limit, 1000)))
            logs.append((name, read.verified, list(reversed(read.log.entries)), ""))
        except NothingToDo:
            logs.append((name, None, [], ""))
        except EnvplaneError as failed:
            logs.append((name, None, [], failed.message))
    return page(request, "audit.html", session, secrets=secrets_of(*(p for _, p, _ in found)), logs=logs,
                active="audit")


# -- scheduled jobs -------------------------------------------------------------------------
@router.get("/jobs", response_class=HTMLResponse)
def jobs_page(request: Request) -> HTMLResponse:
    """The scheduler's jobs of every app (last run, outcome, next run, alerts), and the
    operations this server ran since it started."""
    from envplane.server import scheduler

    session = signed_in(request, "read")
    scheduled = scheduler.overview(store_of(request), environ_of(request))
    jobs = jobs_of(request)
    operations = [j.summary() for j in reversed(jobs.all())] if jobs is not None else []
    return page(request, "jobs.html", session, scheduled=scheduled, operations=operations, active="jobs")


# -- approve and promote ----------------------------------------------------------------------
@router.post("/apps/{app}/releases/{version}/approve", response_model=None)
def approve(request: Request, app: str, version: str, env: str = Form(""), csrf: str = Form("")) -> Response:
    """Approve a release for an env as the signed-in user: the API's approve (signed by the
    server for them, server.approvals), so the gate counts it as that person's, never for
    their own promotion."""
    from envplane.server import api

    session = signed_in(request, "approve", env or None)
    checked_form(request, session, csrf)
    api.approve(app, version, api.ApproveRequest(to=env), request, session.principal)
    return RedirectResponse(f"/apps/{quote(app)}/releases/{quote(version)}?approved={quote(env)}",
                            status_code=303)


@router.post("/apps/{app}/releases/{version}/promote", response_model=None)
def promote(request: Request, app: str, version: str, to: str = Form(""), csrf: str = Form("")) -> Response:
    """Promote a release as the signed-in user: the API's promote, a job of the server's
    (it goes on when the browser closes; the audit log names the user), whose page follows it."""
    from envplane.server import api

    session = signed_in(request, "deploy", to or None)
    checked_form(request, session, csrf)
    started = api.promote(app, version, api.PromoteRequest(to=to), request, session.principal)
    return RedirectResponse(f"/jobs/{started.headers['location'].rsplit('/', 1)[-1]}", status_code=303)


# -- the server's jobs (operations started here, through the API, or by a webhook) --------------
def jobs_of(request: Request) -> Any:
    context = getattr(request.app.state, "envplane", None)
    return getattr(context, "jobs", None)


@router.get("/jobs/{job_id}", response_class=HTMLResponse)
def job_page(request: Request, job_id: str) -> HTMLResponse:
    session = signed_in(request, "read")
    jobs = jobs_of(request)
    job = jobs.get(job_id) if jobs is not None else None
    if job is None:
        raise Refused(404, f"no job {job_id} on this server", "a server keeps the newest 200 jobs that ended")
    events, done = job.since(0)
    secrets = secrets_of(_loaded(request, job.app))
    return page(request, "job.html", session, secrets=secrets, job=job.summary(), done=done,
                lines=[event_line(e) for e in events], after=len(events))


def _loaded(request: Request, app: str) -> Project | None:
    try:
        return app_project(request, app)
    except EnvplaneError:
        return None


def _outcome_class(state: str) -> str:
    return "ok" if state in ("ok", "nothing") else "bad" if state in ("failed", "interrupted") else ""


def event_line(event: Mapping[str, Any]) -> str:
    """A job's event (envplane.events, as data) as one line for people."""
    kind = event.get("type")
    if kind == "step_finished":
        mark = {"ok": "✓", "skip": "–", "failed": "✗", "interrupted": "✗"}.get(str(event.get("state")), "?")
        return f"{mark} {event.get('description')} {float(event.get('seconds') or 0):.1f}s"
    if kind == "step_started":
        return f"… {event.get('description')}"
    if kind == "waiting":
        return f"… {event.get('description')} — {event.get('subject')}: {event.get('detail')}"
    if kind == "log":
        return f"{event.get('source')} | {event.get('line')}"
    return str(event.get("message", ""))


@router.get("/jobs/{job_id}/stream", response_model=None)
async def job_stream(request: Request, job_id: str, after: int = 0) -> Response:
    """The job's events after `after` as Server-Sent Events (HTML lines), then `end` with its
    outcome."""
    from starlette.concurrency import run_in_threadpool

    await run_in_threadpool(signed_in, request, "read")
    jobs = jobs_of(request)
    job = jobs.get(job_id) if jobs is not None else None
    if job is None:
        raise Refused(404, f"no job {job_id} on this server")
    secrets = await run_in_threadpool(lambda: secrets_of(_loaded(request, job.app)))

    async def events() -> AsyncIterator[str]:
        seen = max(0, after)
        while not await request.is_disconnected():
            found, ended = job.since(seen)
            seen += len(found)
            if found:
                yield _sse("line", masked_html(_log_html([event_line(e) for e in found], 0), secrets))
            if ended:
                outcome = job.summary()
                problem = outcome["problem"]
                text = f"— {outcome['state']}" + (f": {problem['detail']}" if problem else "")
                # the outcome above the steps changes with it (an htmx out-of-band swap)
                state = outcome["state"]
                outcome_html = (f'<dd id="job-outcome" hx-swap-oob="true" class="{_outcome_class(state)}">'
                                f'{escape(state)}</dd>')
                yield _sse("end", masked_html(f'<span class="line ended">{escape(text)}</span>{outcome_html}',
                                              secrets))
                return
            await job.changed(KEEP_ALIVE)
            if not job.since(seen)[0] and not job.done:
                yield ": keep-alive\n\n"

    return StreamingResponse(events(), media_type="text/event-stream",
                             headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"})

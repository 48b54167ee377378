"""The HTTP API under /api/v1: parse, check who asks, call envplane.service, format.

Every route authenticates (`require`): a bearer token (server.auth), else the dashboard's
session when the dashboard is mounted. Reads answer at once; operations that change
something and take long (up, down, previews, release, promote, rollback) start a job
(server.jobs) and answer 202 with it; its events stream from /api/v1/jobs/{id}/events. Each
one is recorded in the app's audit log under the principal's name when it ends.
"""

from __future__ import annotations

import json
import logging
import re
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Annotated, Any

from fastapi import APIRouter, Depends, Header, HTTPException, Path, Query, Request
from fastapi.responses import JSONResponse, StreamingResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool

from envplane.errors import Forbidden, GateError, NeedsConfirmation, NotFound, NothingToDo, UsageError
from envplane.events import Report
from envplane.server import problems
from envplane.server.auth import ENV_ACTIONS, Principal
from envplane.server.jobs import Job, Jobs
from envplane.server.log_stream import KEEP_ALIVE
from envplane.state import audit

log = logging.getLogger("envplane.server")

if TYPE_CHECKING:
    from envplane.release.flow import Deployed
    from envplane.spec.load import Project
    from envplane.state.db import Store

ACTIONS = ("read", "read:logs", "deploy", "approve", "admin")
NAME = r"^[a-z0-9][a-z0-9-]{0,62}$"  # an app or env name as the spec allows it


@dataclass
class Context:
    """What the routes need of the server: its environment, its jobs, and the server state's
    answers (server.auth, server.apps) as plain functions."""

    environ: Mapping[str, str]
    authenticate: Callable[[str], Principal | None]  # a raw bearer token -> its principal, or None
    # An app by name, loaded with the given environment (NotFound when none is registered).
    load_app: Callable[[str, Mapping[str, str]], Project]
    app_names: Callable[[], list[str]]
    jobs: Jobs = field(default_factory=Jobs)
    store: Store | None = None  # the server's own (users, tokens, apps)
    # The dashboard's login session, when it is mounted: the request's principal or None.
    session_principal: Callable[[Request], Principal | None] = lambda request: None
    snapshots: Snapshots = field(default_factory=lambda: Snapshots())


def context(request: Request) -> Context:
    found: Context = request.app.state.envplane
    return found


class Unauthorized(HTTPException):
    def __init__(self, detail: str) -> None:
        super().__init__(401, detail, headers={"WWW-Authenticate": 'Bearer realm="envplane"'})


# Documents the scheme in OpenAPI; the header is read below, to say what is wrong with it.
bearer = HTTPBearer(auto_error=False, scheme_name="bearer",
                    description="A token of `envplane tokens create`: Authorization: Bearer TOKEN")


def bearer_token(request: Request) -> str | None:
    """The token of the request's Authorization header; None without one (401 when malformed)."""
    header = request.headers.get("authorization")
    if header is None:
        return None
    scheme, _, raw = header.partition(" ")
    if scheme.lower() != "bearer" or not raw.strip():
        raise Unauthorized("the Authorization header is not `Bearer TOKEN`")
    return raw.strip()


def current_principal(request: Request) -> Principal | None:
    """Who the request's credentials say it is now: its bearer token's principal, else its
    dashboard session's; None when the token is unknown, expired or revoked, or the session
    is closed. Reads the store."""
    ctx, token = context(request), bearer_token(request)
    return ctx.authenticate(token) if token is not None else ctx.session_principal(request)


async def principal_of(request: Request,
                       documented: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)] = None
                       ) -> Principal:
    """The request's principal (401 without). Async, with only the store's read in a worker
    thread: every request passes here."""
    found = await run_in_threadpool(current_principal, request)
    if found is not None:
        return found
    if bearer_token(request) is not None:
        raise Unauthorized("the token is unknown, expired or revoked")
    raise Unauthorized("this needs a token: Authorization: Bearer TOKEN")


def allow(principal: Principal, action: str, env: str | None = None, app: str | None = None) -> None:
    """403 unless the principal's scopes allow `action` (on `env` of `app`)."""
    if not principal.may(action, env, app):
        scoped = app is not None and action in ENV_ACTIONS
        where = (f" on env {env}" if env else "") + (f" of app {app}" if scoped else "")
        scope = f"{action}:{env or '*'}" if action in ENV_ACTIONS else action
        either = f" or {action}:{app}/{env or '*'}" if scoped else ""
        raise Forbidden(f"{principal.actor} may not {action}{where}",
                        f"that needs the scope {scope}{either} (or a pattern matching it, or admin)")


def require(action: str, env_param: str | None = None) -> Callable[..., Awaitable[Principal]]:
    """A FastAPI dependency: the authenticated principal, allowed `action` — on the env the
    path or query parameter `env_param` names, when given."""
    if action not in ACTIONS:
        raise ValueError(f"unknown action {action!r}")

    async def dependency(principal: Annotated[Principal, Depends(principal_of)], request: Request
                         ) -> Principal:
        env = None
        if env_param is not None:
            env = request.path_params.get(env_param) or request.query_params.get(env_param)
        allow(principal, action, env, request.path_params.get("app"))
        return principal

    return dependency


Reader = Annotated[Principal, Depends(require("read"))]
AppName = Annotated[str, Path(pattern=NAME, description="An app registered with `envplane apps add`.")]
EnvName = Annotated[str, Path(pattern=NAME)]
VERSION = r"^v?[0-9]{1,9}\.[0-9]{1,9}\.[0-9]{1,9}$"  # release.versions reads these
Version = Annotated[str, Path(pattern=VERSION, description="A release version, e.g. v1.0.45.")]


class Snapshots:
    """Answers of slow reads (status asks every engine and tries every health check), shared.

    An answer younger than `max_age` seconds is given from memory. An older one, up to
    `max_stale`, is given too while one background refresh makes the next: readers never
    queue behind the engines once there is an answer. Without one (the first read, or after
    `max_stale`), the first reader makes it and the others asking the same wait for it.
    """

    def __init__(self, max_age: float = 1.0, max_stale: float = 10.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.max_age, self.max_stale, self.clock = max_age, max_stale, clock
        self._lock = threading.Lock()
        self._made: dict[Any, tuple[float, Any]] = {}
        self._making: dict[Any, threading.Event] = {}

    def cached(self, key: Any, make: Callable[[], Any]) -> tuple[bool, Any]:
        """(True, an answer) when there is one to give now, never waiting; an old one starts
        a refresh in the background. (False, None) when `get` must make it."""
        with self._lock:
            made = self._made.get(key)
            if made is None:
                return False, None
            age = self.clock() - made[0]
            if age >= self.max_stale:
                return False, None
            if age >= self.max_age and key not in self._making:
                making = self._making[key] = threading.Event()
                threading.Thread(target=self._refresh, args=(key, make, making), daemon=True,
                                 name="status-refresh").start()
        return True, made[1]

    def get(self, key: Any, make: Callable[[], Any]) -> Any:
        """The answer: from memory when young enough, else made (once for every reader)."""
        while True:
            with self._lock:
                made = self._made.get(key)
                if made is not None and self.clock() - made[0] < self.max_age:
                    return made[1]
                making = self._making.get(key)
                if making is None:
                    making = self._making[key] = threading.Event()
                    break
            making.wait()
        try:
            return self._make(key, make)
        finally:
            self._done(key, making)

    def _refresh(self, key: Any, make: Callable[[], Any], making: threading.Event) -> None:
        try:
            self._make(key, make)
        except Exception:  # the old answer serves until max_stale; then a reader sees the error
            log.warning("refreshing %s failed", key, exc_info=True)
        finally:
            self._done(key, making)

    def _make(self, key: Any, make: Callable[[], Any]) -> Any:
        value = make()
        with self._lock:
            self._made[key] = (self.clock(), value)
        return value

    def _done(self, key: Any, making: threading.Event) -> None:
        with self._lock:
            del self._making[key]
        making.set()


router = APIRouter(prefix="/api/v1", responses=problems.responses(401, 403))


# --- models: what the API answers (OpenAPI documents them; schemathesis checks them) ---


class AppInfo(BaseModel):
    name: str


class Port(BaseModel):
    target: int
    published: int
    protocol: str


class ServiceStatus(BaseModel):
    """One container (or Kubernetes pod) of an instance, as `envplane status --json` shows it."""

    env: str
    instance: str
    service: str | None
    container: str | None = None
    colour: str | None = None
    state: str
    health: str | None = None
    why: str | None = None
    version: str | None = None
    last_deploy: str | None = None
    ports: list[Port] = []
    runtime: str | None = None
    namespace: str | None = None
    pod: str | None = None
    ready: str | None = None
    restarts: int | None = None


class JobInfo(BaseModel):
    id: str
    kind: str
    app: str
    env: str | None
    instance: str | None
    by: str
    state: str = Field(description="running, ok, failed, interrupted, or nothing (it held already)")
    created_at: float
    finished_at: float | None
    events: int = Field(description="how many events it has sent so far")
    result: dict[str, Any] | None
    problem: problems.ProblemBody | None


def _project(ctx: Context, app: str, env: str | None = None) -> Project:
    """An app as the server's environment loads it (for reads), with `env` one of its envs."""
    return known_env(ctx.load_app(app, ctx.environ), env)


def acting(ctx: Context, app: str, principal: Principal, env: str | None = None) -> Project:
    """An app loaded for a change: the service's session names the principal as the actor
    (its audit rows, deployments and locks say who asked)."""
    return known_env(ctx.load_app(app, {**ctx.environ, "ENVPLANE_USER": principal.actor}), env)


def known_env(project: Project, env: str | None) -> Project:
    """The project, once `env` (when given) is one of its envs: else 404, as for an app
    that is not registered (the CLI's message and hint; the CLI exits 2)."""
    if env is not None:
        try:
            project.env(env)
        except UsageError as error:
            raise NotFound(error.message, error.hint) from None
    return project


@router.get("/apps", response_model=list[AppInfo], summary="The apps registered with this server")
def list_apps(principal: Reader, request: Request) -> list[dict[str, Any]]:
    return [{"name": name} for name in context(request).app_names()]


@router.get("/apps/{app}/status", response_model=list[ServiceStatus],
            responses=problems.responses(400, 404, 422, 502, 503),
            summary="What runs of the app, per instance and service (envplane status --json)")
async def status(app: AppName, principal: Reader, request: Request,
                 env: Annotated[str | None, Query(pattern=NAME, description="Only this env.")] = None
                 ) -> list[dict[str, Any]]:
    from envplane.service import status as service

    ctx, key = context(request), ("status", app, env)

    def make() -> list[dict[str, Any]]:  # the spec is read in here too: readers share one read
        return service.overview(_project(ctx, app, env), env)

    found, rows = ctx.snapshots.cached(key, make)  # in the event loop: no worker thread
    if not found:
        rows = await run_in_threadpool(ctx.snapshots.get, key, make)
    answer: list[dict[str, Any]] = rows
    return answer


@router.get("/apps/{app}/envs", response_model=list[dict[str, Any]], responses=problems.responses(404, 422),
            summary="Every env of the app: names, domain, data path, secrets, ports (envplane envs --json)")
def envs(app: AppName, principal: Reader, request: Request) -> list[dict[str, Any]]:
    from envplane import actions

    project = _project(context(request), app)
    return [plain(actions.env_row_dict(row)) for row in actions.env_matrix(project)]


Pr = Annotated[int | None, Query(ge=1, le=10**9, description="Pull request number (env test).")]
RUN = r"^[A-Za-z0-9][A-Za-z0-9-]{0,40}$"  # a CI run id
Run = Annotated[str | None, Query(pattern=RUN, description="CI run id (env ci).")]


@router.get("/apps/{app}/envs/{env}/plan", response_model=dict[str, Any],
            responses=problems.responses(400, 404, 422, 502, 503),
            summary="The target and the steps `up` would run; changes nothing (envplane plan --json)")
def plan(app: AppName, env: EnvName, principal: Reader, request: Request, pr: Pr = None, run: Run = None
         ) -> dict[str, Any]:
    from envplane.service import plans

    planned: dict[str, Any] = plain(plans.plan(_project(context(request), app, env), env, pr, run).as_dict())
    return planned


# --- operations: each one a job ---


class UpRequest(BaseModel, extra="forbid"):
    pr: int | None = Field(None, ge=1, le=10**9, description="Pull request number (env test).")
    run: str | None = Field(None, pattern=RUN, description="CI run id (env ci).")
    ref: str | None = Field(None, max_length=200, description="Git ref: the checkout's commit.")
    build: bool = Field(False, description="Rebuild images first (else only missing ones).")
    timeout: float = Field(120.0, gt=0, le=3600,
                           description="Seconds each service may take to become healthy.")


Changes = problems.responses(400, 404, 409, 422, 429)


def audit_job(project: Project, job: Job, detail: Mapping[str, Any]) -> None:
    """The app's audit row of a job, under its starter's name: when it starts, and when it
    ends (its state is the outcome) — by its own server, or by the next one to start when it
    was left running."""
    from envplane.service import audit as service

    row = {"job": job.id, **detail} | ({"error": job.problem["detail"]} if job.problem is not None else {})
    outcome = "started" if job.finished_at is None else job.state
    service.record(project, job.by, f"api:{job.kind}", job.env, job.instance, outcome, row)


def start(request: Request, principal: Principal, kind: str, project: Project, env: str | None,
          instance: str | None, work: Callable[[Report], Any]) -> JSONResponse:
    """Run `work` as a job; answer 202 with the job, its address in Location. The app's audit
    log gets a row under the principal's name when it starts (a server killed mid-job still
    says who started what) and one when it ends, whatever the outcome."""
    ctx = context(request)

    def recorded(job: Job) -> None:
        audit_job(project, job, {"request": f"{request.method} {request.url.path}", "by": principal.kind})

    def run(report: Report) -> dict[str, Any] | None:
        done = work(report)
        result: dict[str, Any] | None = plain(done.as_dict() if hasattr(done, "as_dict") else done)
        return result

    job = ctx.jobs.start(kind, project.app, env, instance, principal.actor, run, recorded, on_start=recorded)
    return JSONResponse(plain(job.summary()), 202, headers={"Location": f"/api/v1/jobs/{job.id}"})


@router.post("/apps/{app}/envs/{env}/up", status_code=202, response_model=JobInfo, responses=Changes,
             dependencies=[Depends(require("deploy", "env"))],
             summary="Bring an env instance up and wait until it is healthy (a job)")
def up(app: AppName, env: EnvName, body: UpRequest, request: Request,
       principal: Annotated[Principal, Depends(principal_of)]) -> JSONResponse:
    from envplane.service import instances

    project = acting(context(request), app, principal, env)
    target = instances.checked_target(project, env, body.pr, body.run)  # bad input: 4xx now, no job
    instances.checked_ref(project, body.ref)
    if target.env.runtime == "process":
        raise UsageError(f"env {env} runs as local processes in the foreground",
                         f"run `envplane up {env}` in a terminal")
    return start(request, principal, "up", project, env, target.id, lambda report: instances.up(
        project, env, body.pr, body.run, ref=body.ref, build=body.build, timeout=body.timeout, report=report))


class ReleaseRequest(BaseModel, extra="forbid"):
    env: str = Field("staging", pattern=NAME, description="Where the new version goes first.")
    pr: int | None = Field(None, ge=1, le=10**9)
    ref: str | None = Field(None, max_length=200,
                            description="The checkout's commit, or any commit of the app's remote (a full "
                                        "sha, fetched into a worktree of the instance's own).")
    timeout: float = Field(120.0, gt=0, le=3600)


@router.post("/apps/{app}/releases", status_code=202, response_model=JobInfo, responses=Changes,
             summary="Build the next version once, record its images, deploy it (a job)")
def release(app: AppName, body: ReleaseRequest, request: Request,
            principal: Annotated[Principal, Depends(principal_of)]) -> JSONResponse:
    from envplane import checkouts
    from envplane.service import releases

    allow(principal, "deploy", body.env, app)
    project = acting(context(request), app, principal, body.env)
    checkouts.checked_ref(project, body.ref)  # the checkout's commit, or a sha to fetch: else 4xx, no job

    def work(report: Report) -> dict[str, Any]:
        return releases.create(project, body.env, body.pr, body.ref, timeout=body.timeout,
                               report=report).as_dict()

    return start(request, principal, "release", project, body.env, None, work)


class PromoteRequest(BaseModel, extra="forbid"):
    to: str = Field("production", pattern=NAME, description="The env it goes to.")
    timeout: float = Field(120.0, gt=0, le=3600)


@router.post("/apps/{app}/releases/{version}/promote", status_code=202, response_model=JobInfo,
             responses=Changes,
             summary="Run the env's gates for a version; deploy that release when every one passes (a job)")
def promote(app: AppName, version: Version, body: PromoteRequest, request: Request,
            principal: Annotated[Principal, Depends(principal_of)]) -> JSONResponse:
    from envplane.release.versions import require as version_of
    from envplane.server import approvals

    allow(principal, "deploy", body.to, app)
    project = acting(context(request), app, principal, body.to)
    version_of(version)

    def work(report: Report) -> dict[str, Any]:
        result = approvals.promote(project, version, body.to, principal, timeout=body.timeout, report=report,
                                   environ=project.environ)
        if result.deployed is None:
            failed = ", ".join(r.gate for r in result.verdict.results if not r.ok)
            raise GateError(f"{version} was not promoted to {body.to}: gates failed: {failed}",
                            f"GET /api/v1/apps/{app}/releases/{version}/gates shows why")
        return {"version": version, "env": body.to, "promoted": True,
                "gates": [{"gate": r.gate, "ok": r.ok, "detail": r.detail} for r in result.verdict.results],
                "deployed": deployed_dict(result.deployed)}

    return start(request, principal, "promote", project, body.to, None, work)


class RollbackRequest(BaseModel, extra="forbid"):
    to: str | None = Field(None, pattern=VERSION, description="This release (default: the previous).")
    confirm: bool = Field(False, description="Roll back to a version that never passed the env's gates.")
    timeout: float = Field(120.0, gt=0, le=3600)


@router.post("/apps/{app}/envs/{env}/rollback", status_code=202, response_model=JobInfo, responses=Changes,
             dependencies=[Depends(require("deploy", "env"))],
             summary="Return an env to its previous release (or `to`), through the same switch (a job)")
def rollback(app: AppName, env: EnvName, body: RollbackRequest, request: Request,
             principal: Annotated[Principal, Depends(principal_of)]) -> JSONResponse:
    from envplane.release.versions import require as version_of
    from envplane.server import approvals

    project = acting(context(request), app, principal, env)
    if body.to is not None:
        version_of(body.to)
    return start(request, principal, "rollback", project, env, None, lambda report: deployed_dict(
        approvals.rollback(project, env, principal, body.to, timeout=body.timeout, report=report,
                           confirm=lambda why: body.confirm, environ=project.environ)))


class ApproveRequest(BaseModel, extra="forbid"):
    to: str = Field("production", pattern=NAME, description="The env the approval is for.")


@router.post("/apps/{app}/releases/{version}/approve", response_model=dict[str, Any],
             responses=problems.responses(400, 404, 409, 422),
             summary="Approve a version for an env as the user behind the token (signed by the server)")
def approve(app: AppName, version: Version, body: ApproveRequest, request: Request,
            principal: Annotated[Principal, Depends(principal_of)]) -> dict[str, Any]:
    from envplane.release.versions import require as version_of
    from envplane.server import approvals

    allow(principal, "approve", body.to, app)
    project = acting(context(request), app, principal, body.to)
    version_of(version)
    done = approvals.approve(project, version, body.to, principal, environ=project.environ)
    answer: dict[str, Any] = plain(done.as_dict())
    return answer


@router.get("/apps/{app}/releases/{version}/promotion", response_model=dict[str, Any],
            responses=problems.responses(400, 404, 422, 503),
            summary="What promoting a version to an env would do, and what decides it (a dry run)")
def promotion(app: AppName, version: Version, principal: Reader, request: Request,
              to: Annotated[str, Query(pattern=NAME)] = "production") -> dict[str, Any]:
    from envplane.service import approvals

    project = _project(context(request), app, to)
    move: dict[str, Any] = plain(approvals.promotion(project, version, to).as_dict())
    return move


@router.get("/apps/{app}/envs/{env}/rollback", response_model=dict[str, Any],
            responses=problems.responses(400, 404, 422, 503),
            summary="What rolling an env back would do (a dry run)")
def rollback_plan(app: AppName, env: EnvName, principal: Reader, request: Request,
                  to: Annotated[str | None, Query(pattern=VERSION)] = None) -> dict[str, Any]:
    from envplane.service import approvals

    move: dict[str, Any] = plain(approvals.rollback(_project(context(request), app, env), env, to).as_dict())
    return move


@router.get("/apps/{app}/approvals", response_model=list[dict[str, Any]],
            responses=problems.responses(404, 422, 503),
            summary="Releases waiting for an approval, per gated env, with their approvals as they count now")
def pending_approvals(app: AppName, principal: Reader, request: Request) -> list[dict[str, Any]]:
    from envplane.service import approvals

    return [plain(w.as_dict()) for w in approvals.pending(_project(context(request), app))]


@router.get("/apps/{app}/releases", response_model=list[dict[str, Any]],
            responses=problems.responses(400, 404, 422, 503),
            summary="Every release, newest first, with where each one runs now (envplane releases --json)")
def list_releases(app: AppName, principal: Reader, request: Request,
                  env: Annotated[str | None, Query(pattern=NAME, description="Only those on this env.")]
                  = None) -> list[dict[str, Any]]:
    from envplane.service import releases

    found = releases.list_releases(_project(context(request), app, env), env)
    return [plain(r.as_dict()) for r in found.releases]


@router.get("/apps/{app}/releases/{version}/gates", response_model=dict[str, Any],
            responses=problems.responses(400, 404, 422, 503),
            summary="The gates of a version's latest promotion attempts and its approvals checked now")
def gates(app: AppName, version: Version, principal: Reader, request: Request) -> dict[str, Any]:
    from envplane.service import releases

    found: dict[str, Any] = plain(releases.gates(_project(context(request), app), version).as_dict())
    return found


class DownRequest(BaseModel, extra="forbid"):
    pr: int | None = Field(None, ge=1, le=10**9, description="Pull request number (env test).")
    run: str | None = Field(None, pattern=RUN, description="CI run id (env ci).")
    purge: bool = Field(False, description="Also remove volumes, the data path, database, bucket, secrets.")
    confirm: bool = Field(False, description="Confirm a purge of an env that keeps data (staging, "
                          "production, dr): `--yes`.")
    final_backup: bool = Field(True, description="Back staging or production up before the purge.")


@router.post("/apps/{app}/envs/{env}/down", status_code=202, response_model=JobInfo, responses=Changes,
             dependencies=[Depends(require("deploy", "env"))],
             summary="Stop and remove an env instance (only that instance's), `purge` its data too (a job)")
def down(app: AppName, env: EnvName, body: DownRequest, request: Request,
         principal: Annotated[Principal, Depends(principal_of)]) -> JSONResponse:
    from envplane import actions
    from envplane.service import instances

    project = acting(context(request), app, principal, env)
    instance = actions.resolve(project, env, body.pr, body.run).id  # bad input: 4xx now, no job

    def work(report: Report) -> Any:
        with confirmed_by_request():
            return instances.down(project, env, body.pr, body.run, purge=body.purge, yes=body.confirm,
                                  final_backup=body.final_backup, report=report)

    return start(request, principal, "down", project, env, instance, work)


# --- previews ---


@router.get("/apps/{app}/previews", response_model=dict[str, Any], responses=problems.responses(404, 422),
            summary="The previews the state store knows, with their age and state (envplane preview list)")
def list_previews(app: AppName, principal: Reader, request: Request) -> dict[str, Any]:
    from envplane.service import previews

    found: dict[str, Any] = plain(previews.list_previews(_project(context(request), app)).as_dict())
    return found


class PreviewRequest(BaseModel, extra="forbid"):
    pr: int = Field(ge=1, le=10**9, description="Pull request number.")
    ref: str | None = Field(None, max_length=200, description="Git ref: the checkout's commit.")
    build: bool = Field(False, description="Rebuild images first (else only missing ones).")
    timeout: float = Field(120.0, gt=0, le=3600)


def _preview_env(principal: Principal, project: Project) -> str:
    from envplane import preview

    env = preview.preview_env(project.envs)
    allow(principal, "deploy", env, project.app)
    return env


@router.post("/apps/{app}/previews", status_code=202, response_model=JobInfo, responses=Changes,
             summary="Create or update the preview of a pull request (a job)")
def preview_up(app: AppName, body: PreviewRequest, request: Request,
               principal: Annotated[Principal, Depends(principal_of)]) -> JSONResponse:
    from envplane.service import instances, previews

    project = acting(context(request), app, principal)
    env = _preview_env(principal, project)
    target = instances.checked_target(project, env, body.pr)  # bad input: 4xx now, no job
    previews.checked_ref(project, body.ref)  # the checkout's commit, or a sha to fetch
    return start(request, principal, "preview-up", project, env, target.id, lambda report: previews.up(
        project, body.pr, ref=body.ref, build=body.build, timeout=body.timeout, report=report))


@router.delete("/apps/{app}/previews/{pr:int}", status_code=202, response_model=JobInfo, responses=Changes,
               summary="Destroy a preview: containers, volumes, data, resources, secrets, routes (a job)")
def preview_down(app: AppName, pr: Annotated[int, Path(ge=1, le=10**9)], request: Request,
                 principal: Annotated[Principal, Depends(principal_of)]) -> JSONResponse:
    from envplane.service import previews

    project = acting(context(request), app, principal)
    env = _preview_env(principal, project)
    return start(request, principal, "preview-down", project, env, f"pr-{pr}",
                 lambda report: previews.down(project, pr, report=report))


class CollectRequest(BaseModel, extra="forbid"):
    ttl: str | None = Field(None, pattern=r"^\d{1,5}[smhdw]$",
                            description="Destroy previews closed this long ago (default: the env's ttl).")
    idle: str = Field("14d", pattern=r"^\d{1,5}[smhdw]$", description="Destroy previews idle this long.")
    dry_run: bool = Field(False, description="Only say what would go.")


@router.post("/apps/{app}/previews/gc", status_code=202, response_model=JobInfo, responses=Changes,
             summary="Destroy previews of closed PRs after the TTL, and idle ones; nothing else (a job)")
def preview_gc(app: AppName, body: CollectRequest, request: Request,
               principal: Annotated[Principal, Depends(principal_of)]) -> JSONResponse:
    from envplane.service import previews

    project = acting(context(request), app, principal)
    env = _preview_env(principal, project)
    return start(request, principal, "preview-gc", project, env, None, lambda report: previews.gc(
        project, ttl=body.ttl, idle=body.idle, dry_run=body.dry_run, report=report))


@contextmanager
def confirmed_by_request() -> Iterator[None]:
    """A confirmation the operation needs is asked of the request: its hint names the field."""
    try:
        yield
    except NeedsConfirmation as ask:
        raise UsageError(ask.message, 'send "confirm": true with the request to confirm it') from None


def deployed_dict(d: Deployed) -> dict[str, Any]:
    return {"version": d.version, "env": d.env, "instance": d.instance, "colour": d.colour, "urls": d.urls,
            "switch_seconds": d.switch_seconds}


# --- audit ---


class AuditRow(BaseModel):
    id: int
    at: str
    actor: str
    action: str
    app: str | None
    env: str | None
    instance: str | None
    outcome: str
    detail: dict[str, Any]
    key_id: str | None


@router.get("/apps/{app}/audit", response_model=list[AuditRow], responses=problems.responses(404, 422, 503),
            summary="Who did what, when, to which instance, and how it ended (newest last)")
def audit_log(app: AppName, principal: Reader, request: Request,
              limit: Annotated[int, Query(ge=1, le=10_000)] = 50) -> list[dict[str, Any]]:
    from envplane.service import audit as service

    try:
        found = service.log(_project(context(request), app), limit)
    except NothingToDo:  # nothing recorded yet: an empty log
        return []
    return [plain(service.entry_dict(r)) for r in found.entries]


class AuditVerdict(BaseModel):
    ok: bool
    rows: int
    problems: list[str]
    last_hash: str
    unkeyed_rows: int
    key_id: str | None


@router.get("/apps/{app}/audit/verify", response_model=AuditVerdict,
            responses=problems.responses(404, 422, 503),
            summary="Check the audit log's keyed hash chain (envplane audit verify --json)")
def audit_verify(app: AppName, principal: Reader, request: Request) -> dict[str, Any]:
    from envplane.service import audit as service

    try:
        verdict: dict[str, Any] = service.verify(_project(context(request), app)).as_dict()
    except NothingToDo:  # nothing recorded yet: an empty chain is intact
        return {"ok": True, "rows": 0, "problems": [], "last_hash": audit.GENESIS, "unkeyed_rows": 0,
                "key_id": None}
    return verdict


def plain(data: Any) -> Any:
    """JSON-able data as the CLI's --json prints it (a Secret as its mask, dates as text)."""
    return json.loads(json.dumps(data, default=str))


# --- logs ---


@router.get("/apps/{app}/envs/{env}/logs/{service}", response_class=StreamingResponse,
            dependencies=[Depends(require("read:logs", "env"))],
            responses={**problems.responses(400, 404, 422, 502), 200: {
                "content": {"text/event-stream": {}},
                "description": "`log` events ({line}), `skipped` when a slow reader lost lines, then `end`"}},
            summary="A service's log as Server-Sent Events: the last 200 lines, then new ones with follow")
async def logs(app: AppName, env: EnvName, service: Annotated[str, Path(pattern=NAME)], request: Request,
               pr: Pr = None, run: Run = None, follow: bool = True) -> StreamingResponse:
    from starlette.concurrency import run_in_threadpool

    from envplane.server.log_stream import LogSource, sse_events
    from envplane.service import logs as service_logs

    def source() -> LogSource:
        """The log command (service.logs: any runtime, the app's secrets to mask), read by a
        thread of its own into a bounded backlog, so a slow client never holds it up."""
        project = _project(context(request), app, env)
        return LogSource.of(service_logs.reader(project, env, service, pr, run, follow=follow))

    lines = await run_in_threadpool(source)

    def batch(found: list[str], skipped: int) -> str:
        said = [f"event: skipped\ndata: {json.dumps({'lines': skipped})}\n\n"] if skipped else []
        return "".join(said + [f"event: log\ndata: {json.dumps({'line': line})}\n\n" for line in found])

    refused = {"detail": "the token or session is no longer valid, or may no longer read logs"}
    events = sse_events(lines, request, batch, ended="event: end\ndata: {}\n\n",
                        allowed=lambda: still_allowed(request, "read:logs", env),
                        refused=f"event: end\ndata: {json.dumps(refused)}\n\n")
    return StreamingResponse(events, media_type="text/event-stream",
                             headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"})


def still_allowed(request: Request, action: str, env: str | None) -> bool:
    """Whether the request's credentials hold now as when it began — its token not revoked
    nor expired, else its dashboard session still open — and still allow `action`."""
    principal = current_principal(request)
    return principal is not None and principal.may(action, env, request.path_params.get("app"))


# --- jobs ---


@router.get("/jobs", response_model=list[JobInfo], summary="Jobs, newest first, with their outcome")
def list_jobs(principal: Reader, request: Request,
              app: Annotated[str | None, Query(pattern=NAME)] = None) -> list[dict[str, Any]]:
    return [j.summary() for j in reversed(context(request).jobs.all()) if app in (None, j.app)]


def _job(request: Request, job_id: str) -> Job:
    job = context(request).jobs.get(job_id)
    if job is None:
        raise NotFound(f"no job {job_id} on this server",
                       "GET /api/v1/jobs lists them; a server keeps the newest 200 that ended")
    return job


JobId = Annotated[str, Path(pattern=r"^[0-9a-f]{32}$")]


@router.get("/jobs/{job_id}", response_model=JobInfo, responses=problems.responses(404))
def get_job(job_id: JobId, principal: Reader, request: Request) -> dict[str, Any]:
    return _job(request, job_id).summary()


@router.get("/jobs/{job_id}/events", responses={**problems.responses(404), 200: {
    "content": {"text/event-stream": {}}, "description": "The job's events, then `end` with its outcome"}},
    response_class=StreamingResponse,
    summary="The job's events as Server-Sent Events, from the first (or after Last-Event-ID)")
async def job_events(job_id: JobId, principal: Reader, request: Request,
                     last_event_id: Annotated[str | None, Header()] = None) -> StreamingResponse:
    job = _job(request, job_id)
    # isdigit() holds for '²' and for 5000 digits, which int() refuses: ASCII, 9 digits at most
    after = int(last_event_id) if last_event_id and re.fullmatch(r"[0-9]{1,9}", last_event_id) else 0
    return StreamingResponse(_stream(job, after, request), media_type="text/event-stream",
                             headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"})




async def _stream(job: Job, after: int, request: Request) -> AsyncIterator[str]:
    while True:
        events, ended = job.since(after)
        for event in events:
            after = event["seq"]
            yield f"id: {after}\nevent: {event['type']}\ndata: {json.dumps(event)}\n\n"
        if ended:
            yield f"event: end\ndata: {json.dumps(job.summary())}\n\n"
            return
        if await request.is_disconnected():
            return  # the job goes on; whoever comes back reads from Last-Event-ID
        await job.changed(KEEP_ALIVE)
        if not job.since(after)[0] and not job.done:
            yield ": keep-alive\n\n"


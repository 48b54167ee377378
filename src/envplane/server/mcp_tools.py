"""envplane's MCP tools (issue 14): what an assistant may look at and do through the Model
Context Protocol, on stdio (`envplane mcp`) and streamable HTTP (`/mcp` in `envplane serve`).

Each tool is one call of envplane.service, allowed by the caller's scopes (the server's Principal:
`may`) and answered with plain data in which every secret value of the app is
masked. The transports (cli/mcp_commands.py, server/mcp_http.py) only say who calls
(`Identify`) and where the apps are (`Apps`); no rule lives here.
"""

from __future__ import annotations

import contextlib
import itertools
from collections.abc import Callable, Iterable, Mapping
from dataclasses import asdict, dataclass
from typing import Any, TypeVar

import anyio.from_thread
from mcp.server import MCPServer
from mcp.server.mcpserver import Context
from mcp.server.mcpserver.exceptions import ToolError
from mcp.types import ToolAnnotations

from envplane import __version__, events
from envplane.errors import EnvplaneError, GateError, NothingToDo, UsageError
from envplane.events import Event, Note, Report, StepFinished
from envplane.secret import Secret, mask_known
from envplane.server.auth import ENV_ACTIONS, Principal
from envplane.spec.load import Project

T = TypeVar("T")
TOKEN_ENV = "ENVPLANE_TOKEN"

# Logs are capped: an assistant's context is small, and a container's log is not.
MAX_LOG_LINES = 500
MAX_LOG_BYTES = 64 * 1024

READ_ONLY = ToolAnnotations(read_only_hint=True, destructive_hint=False, idempotent_hint=True,
                            open_world_hint=False)
# A preview is made or brought up to date: nothing that ran is lost.
ADDS = ToolAnnotations(read_only_hint=False, destructive_hint=False, idempotent_hint=True,
                       open_world_hint=False)
# A preview's data, database, bucket and secrets are deleted.
DESTROYS = ToolAnnotations(read_only_hint=False, destructive_hint=True, idempotent_hint=True,
                           open_world_hint=False)
# What runs on the env is replaced by another version.
REPLACES = ToolAnnotations(read_only_hint=False, destructive_hint=True, idempotent_hint=False,
                           open_world_hint=False)
# ... by a branch fetched from the app's git remote.
REPLACES_FROM_GIT = ToolAnnotations(read_only_hint=False, destructive_hint=True, idempotent_hint=False,
                                    open_world_hint=True)

INSTRUCTIONS = """\
envplane runs one app on every rung of its ladder: local, docker, ci, test (one per pull \
request), staging, production, dr. `status` shows what runs; `plan` what `up` would do; \
`logs` a service's last lines; `approvals_pending` what waits for a person. With a deploy \
scope: `preview_up`/`preview_down` per pull request, `deploy_branch` to staging, `release` \
to staging, `promote` and `rollback` (dry run first: call again with confirm=true). Secret \
values never appear in any answer (they read ***). Every tool names the app (optional when \
the server has one)."""


@dataclass(frozen=True)
class Apps:
    """Where the tools find the apps: those registered with the server (server/apps.py)."""

    names: Callable[[], list[str]]
    # An app by name, loaded with the given environment (NotFound when none is registered).
    load: Callable[[str, Mapping[str, str]], Project]
    environ: Mapping[str, str]  # the server's


# Who calls this request (the transport knows: a token from the environment on stdio, the
# bearer token on HTTP); it raises ToolError when the token no longer counts.
Identify = Callable[[Context], Principal]


def serve_stdio(token: Secret, environ: Mapping[str, str]) -> None:
    """`envplane mcp`: the tools on stdin/stdout for an assistant that started this process,
    acting as the server token `token` (ENVPLANE_TOKEN), checked again at every call: a
    revoked or expired token stops working at once. `environ` must not hold the token (an
    app's Compose files are interpolated from it)."""
    from envplane.server import apps, auth, home

    if not token:
        raise UsageError(f"{TOKEN_ENV} is not set: `envplane mcp` acts as a token of the server's",
                         "create one with `envplane tokens create --name assistant --scope read` and put it "
                         f"in the assistant's MCP configuration as {TOKEN_ENV}")
    store = home.open_server_store(environ)
    if auth.authenticate_token(store, token) is None:
        raise EnvplaneError(f"the token in {TOKEN_ENV} is unknown, expired or revoked",
                            "`envplane tokens list` shows the server's tokens; create a new one")

    def identify(ctx: Context) -> Principal:
        principal = auth.authenticate_token(store, token)
        if principal is None:
            raise ToolError(f"the token in {TOKEN_ENV} is unknown, expired or revoked")
        return principal

    registered = Apps(lambda: [a.name for a in apps.list_apps(store)],
                      lambda name, env: apps.load(store, name, env), environ)
    _log_once_to_stderr()
    build(registered, identify).run("stdio")


def _log_once_to_stderr() -> None:
    """stdout is the protocol's. Every log line goes once to stderr, masked, through one
    handler on the root logger, set before the SDK's run (whose basicConfig then adds none);
    other libraries' INFO chatter (Alembic's migrations at a first deploy) stays out."""
    import logging
    import sys

    from envplane.secret import MaskedFormatter

    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(MaskedFormatter("%(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(logging.WARNING)
    logging.getLogger("envplane").setLevel(logging.INFO)


def build(apps: Apps, identify: Identify) -> MCPServer:
    """The MCP server with every tool; the transport runs it."""
    server: MCPServer = MCPServer("envplane", version=__version__, instructions=INSTRUCTIONS)
    tools = Tools(apps, identify)
    for reader in (tools.status, tools.plan, tools.logs, tools.approvals_pending):
        server.add_tool(reader, annotations=READ_ONLY)
    server.add_tool(tools.preview_up, annotations=ADDS)
    server.add_tool(tools.preview_down, annotations=DESTROYS)
    server.add_tool(tools.deploy_branch, annotations=REPLACES_FROM_GIT)
    for changer in (tools.release, tools.promote, tools.rollback):
        server.add_tool(changer, annotations=REPLACES)
    return server


class Tools:
    def __init__(self, apps: Apps, identify: Identify) -> None:
        self.apps = apps
        self.identify = identify

    # --- reads: any token (read:logs for logs) ---

    def status(self, ctx: Context, app: str = "", env: str = "") -> dict[str, Any]:
        """What runs of the app, per env instance and service: state, health (tried once),
        how its last deploy ended, the release it runs, and why it is unhealthy."""
        from envplane.service import status

        project = self._reader(ctx, app, "read", env or None)
        return _answer(project, lambda: {"app": project.app,
                                         "services": status.overview(project, env or None)})

    def plan(self, ctx: Context, env: str, app: str = "", pr: int | None = None) -> dict[str, Any]:
        """The steps `envplane up ENV` would run for one instance (env test: its pull request
        `pr`), and every name it would use: a dry run that changes nothing."""
        from envplane.service import plans

        project = self._reader(ctx, app, "read", env)
        return _answer(project, lambda: plans.plan(project, env, pr).as_dict())

    def logs(self, ctx: Context, env: str, service: str, app: str = "", pr: int | None = None,
             lines: int = 100) -> dict[str, Any]:
        """A service's last log lines (at most 500 and 64 KiB), secret values masked."""
        project = self._reader(ctx, app, "read:logs", env)
        if not 1 <= lines <= MAX_LOG_LINES:
            raise ToolError(f"lines must be between 1 and {MAX_LOG_LINES}")

        def answer() -> dict[str, Any]:
            text = _last_lines(project, env, pr, service, lines)
            kept = _cap(text.splitlines()[-lines:], MAX_LOG_BYTES)
            return {"app": project.app, "env": env, "service": service, "lines": kept}

        return _answer(project, answer)

    def approvals_pending(self, ctx: Context, app: str = "") -> dict[str, Any]:
        """Releases that run on the env before a gated one (staging before production) and
        wait for an approval there, with the approvals they have as they count now. Approving
        is for people (envplane approve, the dashboard), never for this server's tools."""
        from envplane.service import approvals

        project = self._reader(ctx, app, "read", None)
        return _answer(project, lambda: {"app": project.app,
                                         "pending": [w.as_dict() for w in approvals.pending(project)]})

    # --- changes: a deploy:ENV scope; each one audited as mcp:TOOL under the caller's name ---

    def preview_up(self, ctx: Context, pr: int, app: str = "", ref: str | None = None) -> dict[str, Any]:
        """Create or update the preview (env test instance) of pull request `pr` from the
        server's checkout, or of commit `ref` (a full sha, fetched into the PR's own
        worktree), and wait until it is healthy; its URLs and step timings."""
        caller, project, env = self._changer(ctx, app, _preview_env)

        def work() -> dict[str, Any]:
            from envplane.service import previews

            previews.checked_ref(project, ref)  # the checkout's commit, or a sha it fetches
            return previews.up(project, pr, ref=ref, wait=False, report=_progress(ctx, project)).as_dict()

        return self._change(caller, project, "preview_up", env, f"pr-{pr}", work)

    def preview_down(self, ctx: Context, pr: int, app: str = "") -> dict[str, Any]:
        """Destroy the preview of pull request `pr`: its containers, volumes, data path,
        database, bucket, secrets and routes (that instance's only)."""
        caller, project, env = self._changer(ctx, app, _preview_env)

        def work() -> dict[str, Any]:
            from envplane.service import previews

            return previews.down(project, pr, wait=False, report=_progress(ctx, project)).as_dict()

        return self._change(caller, project, "preview_down", env, f"pr-{pr}", work)

    def deploy_branch(self, ctx: Context, branch: str, app: str = "", env: str = "staging") -> dict[str, Any]:
        """Deploy the head of a git branch (fetched from the app's remote) to staging, to try a
        feature before it is merged (seed 003). Never to an env behind an approval gate."""
        from envplane.service import branches

        caller, project, env = self._changer(ctx, app, lambda p: env)
        return self._change(caller, project, "deploy_branch", env, env,
                            lambda: branches.deploy(project, branch, env, wait=False,
                                                            report=_progress(ctx, project)).as_dict())

    def release(self, ctx: Context, app: str = "", env: str = "staging", ref: str | None = None
                ) -> dict[str, Any]:
        """Build the next version once (v1.0.44 -> v1.0.45) from the server's checkout, or
        from commit `ref` (a full sha, fetched from the app's remote into a worktree of its
        own), record its images and deploy it to staging; production then takes that same
        version only through `promote`."""
        from envplane import checkouts
        from envplane.service import releases

        caller, project, env = self._changer(ctx, app, lambda p: env)

        def work() -> dict[str, Any]:
            checkouts.checked_ref(project, ref)  # the checkout's commit, or a sha it fetches
            made = releases.create(project, env, ref=ref, wait=False, report=_progress(ctx, project))
            return {"version": made.version, "commit": made.commit, "deployed": made.deployed.as_dict()}

        return self._change(caller, project, "release", env, env, work)

    def promote(self, ctx: Context, version: str, app: str = "", to: str = "production",
                confirm: bool = False) -> dict[str, Any]:
        """Promote a release to an env through its gates. Without confirm=true it changes
        nothing and answers the dry run: what runs there now, what would, which gates decide,
        the approvals so far. Behind an approval gate another person must have approved it
        (in the dashboard or with `envplane approve`): the server signs the request as the
        token's user, and the gate refuses that user's own approval."""
        from envplane.server import approvals as signed
        from envplane.service import approvals

        caller, project, env = self._changer(ctx, app, lambda p: to)
        move = _answer(project, lambda: approvals.promotion(project, version, env).as_dict())
        if not confirm:
            return {"dry_run": True, **move, "next": "call promote again with confirm=true to run the gates "
                    "and deploy when they pass"}

        def work() -> dict[str, Any]:
            done = signed.promote(project, version, env, caller, wait=False, environ=self.apps.environ,
                                  report=_progress(ctx, project))
            if done.deployed is None:
                raise GateError(f"{version} did not pass the gates of {env}: " + "; ".join(
                    f"{r.gate}: {r.detail}" for r in done.verdict.failed),
                    "`approvals_pending` shows who approved; `envplane gates VERSION` every result")
            return {"version": version, "env": env, "gates": [asdict(r) for r in done.verdict.results],
                    "deployed": asdict(done.deployed)}

        return self._change(caller, project, "promote", env, env, work)

    def rollback(self, ctx: Context, env: str, app: str = "", to: str | None = None,
                 confirm: bool = False) -> dict[str, Any]:
        """Return an env to its previous release (or `to`, one that ran there), through the same
        switch. Without confirm=true it changes nothing and answers the dry run. A version
        that never passed the env's gates is refused."""
        from envplane.server import approvals as signed
        from envplane.service import approvals

        caller, project, env = self._changer(ctx, app, lambda p: env)
        move = _answer(project, lambda: approvals.rollback(project, env, to).as_dict())
        if not confirm:
            return {"dry_run": True, **move, "next": "call rollback again with confirm=true to switch"}
        return self._change(caller, project, "rollback", env, env, lambda: asdict(
            signed.rollback(project, env, caller, move["version"], wait=False, environ=self.apps.environ,
                            report=_progress(ctx, project))))

    # --- who may ---

    def _reader(self, ctx: Context, app: str, action: str, env: str | None) -> Project:
        """The app named (or the only one), once the caller may do `action` on `env`."""
        _check(self.identify(ctx), action, env, app or None)
        return _answer_errors(lambda: self._project(app, self.apps.environ))

    def _changer(self, ctx: Context, app: str, env_of: Callable[[Project], str]
                 ) -> tuple[Principal, Project, str]:
        """The caller, the app loaded to act as the caller (its audit rows, deployments and
        locks name them), and the env the change is on, once the caller may deploy there."""
        caller = self.identify(ctx)
        acting = {**self.apps.environ, "ENVPLANE_USER": caller.actor}
        project = _answer_errors(lambda: self._project(app, acting))
        env = _answer_errors(lambda: env_of(project))
        _answer_errors(lambda: project.env(env))
        _check(caller, "deploy", env, project.app)
        return caller, project, env

    def _change(self, caller: Principal, project: Project, tool: str, env: str, instance: str,
                work: Callable[[], dict[str, Any]]) -> dict[str, Any]:
        """Run a change; the app's audit log gets one row under the caller's name whatever its
        outcome (as the API's jobs do)."""
        from envplane.service import audit

        outcome, detail = "failed", {"by": caller.kind, "via": "mcp"}
        try:
            result = _answer(project, work)
            outcome = "ok"
            return result
        except ToolError as exc:
            detail["error"] = str(exc)
            raise
        finally:
            audit.record(project, caller.actor, f"mcp:{tool}", env, instance, outcome, detail)

    def _project(self, name: str, environ: Mapping[str, str]) -> Project:
        names = self.apps.names()
        if not name:
            if len(names) == 1:
                name = names[0]
            else:
                raise UsageError("which app?", "name one: " + (", ".join(names) or "none is registered: "
                                                                "`envplane apps add PATH`"))
        return self.apps.load(name, environ)


def _progress(ctx: Context, project: Project) -> Report:
    """An operation's finished steps and notes as MCP progress notifications, masked (a client
    sees them when it asked with a progress token; a long deploy is not silent)."""
    from envplane.service.secrets import app_secrets

    secrets = app_secrets(project)
    count = itertools.count(1)

    def report(event: Event) -> None:
        if isinstance(event, StepFinished | Note):
            # a client that went away or does not listen must not stop the operation
            with contextlib.suppress(Exception):
                said = mask_known(events.line(event), secrets)
                anyio.from_thread.run(ctx.report_progress, next(count), None, said)

    return report


def _preview_env(project: Project) -> str:
    from envplane import preview

    return preview.preview_env(project.envs)


def _check(caller: Principal, action: str, env: str | None, app: str | None) -> None:
    if not caller.may(action, env, app):
        scoped = app if app and action in ENV_ACTIONS else None
        where = (f" on env {env}" if env else "") + (f" of app {scoped}" if scoped else "")
        raise ToolError(f"{caller.name} may not {action}{where}: {_scope_hint(action, env, scoped)}")


def _scope_hint(action: str, env: str | None, app: str | None = None) -> str:
    scope = f"{action}:{env or '*'}" if action in ENV_ACTIONS else action
    either = f" or {action}:{app}/{env or '*'}" if app else ""
    return f"its token needs the scope {scope}{either} (or admin)"


def _last_lines(project: Project, env: str, pr: int | None, service: str, lines: int) -> str:
    """The service's last lines (service.logs: masked, every replica's on Swarm and Kubernetes)."""
    from envplane.service import logs

    return "\n".join(logs.lines(project, env, service, pr, tail=lines))


def _cap(lines: list[str], limit: int) -> list[str]:
    """The last lines that fit in `limit` bytes (the newest ones matter); a newest line longer
    than that alone is cut to its end."""
    kept: list[str] = []
    size = 0
    for line in reversed(lines):
        size += len(line.encode()) + 1
        if size > limit:
            break
        kept.append(line)
    if not kept and lines:
        return [lines[-1].encode()[-limit:].decode(errors="ignore")]
    return kept[::-1]


def _answer(project: Project, work: Callable[[], dict[str, Any]]) -> dict[str, Any]:
    """The work's answer with every secret value of the app masked; its errors as ToolErrors."""
    from envplane.service.secrets import app_secrets

    secrets = app_secrets(project)
    result: dict[str, Any] = masked(_answer_errors(work, secrets), secrets)
    return result


def _answer_errors(work: Callable[[], T], secrets: Iterable[Secret] = ()) -> T:
    try:
        return work()
    except NothingToDo as exc:
        raise ToolError(mask_known(f"nothing to do: {exc.message}", secrets)) from None
    except EnvplaneError as exc:
        lines = [p.render() + (f" (hint: {p.hint})" if p.hint else "") for p in exc.problems]
        raise ToolError(mask_known("\n".join(lines), secrets)) from None


def masked(value: Any, secrets: Iterable[Secret]) -> Any:
    """The JSON-able value with every secret value masked, in every string and key."""
    known = list(secrets)
    if isinstance(value, str):
        return mask_known(value, known)
    if isinstance(value, dict):
        return {masked(k, known): masked(v, known) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [masked(v, known) for v in value]
    return value

"""#14 MCP: the tools, driven by the SDK's own in-process client against a real running
instance (Docker, the file secret store): status shows it, plan dry-runs it, logs show what
its container printed with the secret masked, the scopes decide who may call what, and no
answer ever holds a secret value."""

from __future__ import annotations

import os
import sys
from collections.abc import Awaitable, Callable, Iterator, Mapping
from pathlib import Path
from typing import Any, TypeVar

import anyio
import pytest
from mcp import Client, StdioServerParameters

from envplane import actions
from envplane.errors import NotFound
from envplane.secret import masking
from envplane.server import approvals, mcp_tools
from envplane.server.auth import Principal
from envplane.service import instances
from envplane.spec.load import Project
from tests.mcp_kit import instance_secrets, leaks, leaky_app
from tests.support import cli, docker_engine, ensure_busybox_image, free_port_block, need


def one_app(project: Project) -> mcp_tools.Apps:
    def load(name: str, environ: Mapping[str, str]) -> Project:
        if name != project.app:
            raise NotFound(f"no app {name!r} is registered")
        return actions.open_project(project.root, environ)

    return mcp_tools.Apps(lambda: [project.app], load, dict(os.environ))


T = TypeVar("T")
ENV = {"DATA_PATH": "", "ENVPLANE_SECRETS": "file", "ENVPLANE_SECRET_KEY": ""}


@pytest.fixture(scope="module")
def running(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Project, list[str]]]:
    """The leaky app's PR 6 up, with its database (its container printed its secret and its
    DATABASE_URL); (project, every value of its secret store)."""
    need("a Docker engine", docker_engine(), "run scripts/services/docker.sh")
    postgres = os.environ.get("ENVPLANE_TEST_POSTGRES_URL", "")
    need("PostgreSQL", bool(postgres), "run scripts/services/postgres.sh and eval its export line")
    ensure_busybox_image()
    folder = tmp_path_factory.mktemp("mcp-app")
    with pytest.MonkeyPatch.context() as patch:
        for key, value in ENV.items():
            patch.setenv(key, value)
        patch.setenv("ENVPLANE_POSTGRES_URL", postgres)
        # the server's home: its signing key, with which it signs for its users
        patch.setenv("ENVPLANE_SERVER_HOME", str(tmp_path_factory.mktemp("mcp-server")))
        name, _ = leaky_app(folder, free_port_block(), ENV, postgres=True)
        (folder / "approvers").write_text("".join(approvals.approver_line(user, os.environ) + "\n"
                                                  for user in ("alice", "bob")))
        spec = folder / "envplane.yaml"
        spec.write_text(spec.read_text() + "approvers: approvers\n")
        project = actions.open_project(folder, os.environ)
        try:
            with masking():
                instances.up(project, "test", 6)
            secrets = instance_secrets(folder, name, ENV)
            assert len(secrets) == 2  # API_KEY, and the password of PR 6's database role
            yield project, secrets
        finally:
            cli("down", "test", "--pr", "6", "--purge", cwd=folder, env={**ENV, "ENVPLANE_POSTGRES_URL": postgres})


def call(project: Project, scopes: set[str] | Principal, tool: str, arguments: dict[str, Any],
         progress: list[str] | None = None) -> Any:
    """The tool's answer to a token `robot` with these scopes (or to `scopes`, a principal);
    the progress it reports goes to `progress`."""
    caller = scopes if isinstance(scopes, Principal) else Principal("robot", "token", frozenset(scopes))
    server = mcp_tools.build(one_app(project), lambda ctx: caller)

    async def heard(done: float, total: float | None, message: str | None) -> None:
        if progress is not None:
            progress.append(message or "")

    async def go() -> Any:
        async with Client(server) as client:
            return await client.call_tool(tool, arguments, progress_callback=heard)

    return anyio.run(go)


def test_status_shows_the_running_instance(running: tuple[Project, list[str]]) -> None:
    project, secrets = running
    result = call(project, {"read"}, "status", {"env": "test"})
    assert not result.is_error, result
    web = [s for s in result.structured_content["services"] if s["instance"] == "pr-6"]
    assert [(s["service"], s["state"], s["health"]) for s in web] == [("web", "running", "healthy")]
    assert leaks(result, secrets) == []


def test_logs_show_what_the_container_printed_with_its_secret_masked(running: tuple[Project, list[str]]) -> None:
    project, secrets = running
    result = call(project, {"read:logs"}, "logs", {"env": "test", "pr": 6, "service": "web"})
    assert not result.is_error, result
    lines = result.structured_content["lines"]
    assert "starting with key=*** token=none" in lines
    [db] = [line for line in lines if line.startswith("db=")]
    assert db.startswith("db=postgres") and ":***@" in db  # the role's password, masked
    assert leaks(result, secrets) == []
    one = call(project, {"read:logs"}, "logs", {"env": "test", "pr": 6, "service": "web", "lines": 1})
    assert len(one.structured_content["lines"]) == 1
    too_many = call(project, {"read:logs"}, "logs", {"env": "test", "pr": 6, "service": "web", "lines": 501})
    assert too_many.is_error and "between 1 and 500" in too_many.content[0].text


def test_logs_need_the_read_logs_scope(running: tuple[Project, list[str]]) -> None:
    project, _ = running
    result = call(project, {"read"}, "logs", {"env": "test", "pr": 6, "service": "web"})
    assert result.is_error
    assert "robot may not read:logs on env test" in result.content[0].text
    assert "read:logs" in result.content[0].text


def test_plan_is_a_dry_run_with_no_secret(running: tuple[Project, list[str]]) -> None:
    project, secrets = running
    result = call(project, {"read"}, "plan", {"env": "test", "pr": 6})
    assert not result.is_error, result
    plan = result.structured_content
    assert plan["target"]["instance"] == "pr-6" and plan["steps"]
    assert leaks(result, secrets) == []


def test_a_token_without_read_sees_nothing(running: tuple[Project, list[str]]) -> None:
    project, _ = running
    for tool, arguments in (("status", {}), ("plan", {"env": "test", "pr": 6})):
        result = call(project, set(), tool, arguments)
        assert result.is_error and "robot may not read" in result.content[0].text


def test_bad_input_names_what_is_wrong(running: tuple[Project, list[str]]) -> None:
    project, _ = running
    unknown_env = call(project, {"read"}, "status", {"env": "nope"})
    assert unknown_env.is_error and "unknown environment 'nope'" in unknown_env.content[0].text
    unknown_app = call(project, {"read"}, "status", {"app": "nope"})
    assert unknown_app.is_error and "no app 'nope'" in unknown_app.content[0].text
    unknown_service = call(project, {"read:logs"}, "logs", {"env": "test", "pr": 6, "service": "db"})
    assert unknown_service.is_error and "no service db" in unknown_service.content[0].text


@pytest.fixture()
def server_home(running: tuple[Project, list[str]], tmp_path: Path) -> tuple[dict[str, str], Any]:
    """A server home with the running app registered; (its environment, its store)."""
    from envplane.server import apps, home

    environ = {**os.environ, **ENV, "ENVPLANE_SERVER_HOME": str(tmp_path / "server")}
    store = home.open_server_store(environ)
    apps.add(store, running[0].root)
    return environ, store


def token(store: Any, *scopes: str, name: str = "assistant") -> str:
    """A new server token with these scopes (the raw token, shown once)."""
    from envplane.server import auth

    _, raw = auth.create_token(store, name, list(scopes))
    return raw.reveal()


def over_stdio(environ: dict[str, str], raw: str, work: Callable[[Client], Awaitable[T]]) -> T:
    """`envplane mcp` started as an assistant starts it, driven by the SDK's stdio client."""
    params = StdioServerParameters(command=sys.executable, args=["-m", "envplane", "mcp"],
                                   env={**environ, "ENVPLANE_TOKEN": raw})

    async def go() -> T:
        async with Client(params) as client:
            return await work(client)

    return anyio.run(go)


def test_stdio_lists_the_tools_and_answers_status_as_the_token(
        running: tuple[Project, list[str]], server_home: tuple[dict[str, str], Any]) -> None:
    secrets = running[1]
    environ, store = server_home

    async def work(client: Client) -> tuple[Any, Any, Any]:
        tools = await client.list_tools()
        status = await client.call_tool("status", {"env": "test"})
        logs = await client.call_tool("logs", {"env": "test", "pr": 6, "service": "web"})
        return tools, status, logs

    tools, status, logs = over_stdio(environ, token(store, "read"), work)
    assert {"status", "plan", "logs"} <= {t.name for t in tools.tools}
    assert all(t.annotations.read_only_hint for t in tools.tools if t.name in ("status", "plan", "logs"))
    assert not status.is_error, status
    assert {(s["instance"], s["service"]) for s in status.structured_content["services"]} >= {("pr-6", "web")}
    assert logs.is_error and "may not read:logs on env test" in logs.content[0].text
    assert leaks(tools, secrets) == leaks(status, secrets) == leaks(logs, secrets) == []


def test_stdio_keeps_its_token_from_the_apps_it_deploys(
        running: tuple[Project, list[str]], server_home: tuple[dict[str, str], Any]) -> None:
    """The app's Compose file reads ${ENVPLANE_TOKEN}: had `envplane mcp` left the token in
    its environment, the preview would be recreated with it and print it."""
    secrets = running[1]
    environ, store = server_home
    raw = token(store, "read:logs", "deploy:test")

    async def work(client: Client) -> tuple[Any, Any]:
        up = await client.call_tool("preview_up", {"pr": 6})
        return up, await client.call_tool("logs", {"env": "test", "pr": 6, "service": "web"})

    up, logs = over_stdio(environ, raw, work)
    assert not up.is_error, up.content
    started = [line for line in logs.structured_content["lines"] if line.startswith("starting")]
    assert started[-1] == "starting with key=*** token=none"
    assert leaks(up, [*secrets, raw]) == leaks(logs, [*secrets, raw]) == []


def test_stdio_refuses_a_missing_or_unknown_token_and_a_token_revoked_mid_session(
        running: tuple[Project, list[str]], server_home: tuple[dict[str, str], Any]) -> None:
    from envplane.server import auth

    environ, store = server_home
    for raw, said in (("", "ENVPLANE_TOKEN is not set"), ("envp_nope", "unknown, expired or revoked")):
        done = cli("mcp", cwd=running[0].root, env={**environ, "ENVPLANE_TOKEN": raw})
        assert done.returncode in (1, 2) and said in done.stderr, done.stderr
        assert done.stdout == ""  # stdout is the protocol's: nothing else goes there
    raw = token(store, "read", name="laptop")

    async def work(client: Client) -> tuple[Any, Any]:
        before = await client.call_tool("status", {})
        auth.revoke_token(store, "laptop")
        return before, await client.call_tool("status", {})

    before, after = over_stdio(environ, raw, work)
    assert not before.is_error
    assert after.is_error and "unknown, expired or revoked" in after.content[0].text


def test_a_preview_up_reports_its_steps_as_progress(running: tuple[Project, list[str]]) -> None:
    project, secrets = running
    heard: list[str] = []
    result = call(project, {"deploy:test"}, "preview_up", {"pr": 6}, heard)
    assert not result.is_error, result.content
    steps = {s["kind"] for s in result.structured_content["steps"]}
    assert {"lock", "health"} <= steps
    # each step as it finished: "✓ wait until every service is healthy 0.3s"
    finished = [line for line in heard if line[:1] in ("✓", "–")]
    assert len(finished) == len(steps), heard
    assert not [line for line in heard if any(s in line for s in secrets)]


def test_a_read_only_token_cannot_change_anything(running: tuple[Project, list[str]]) -> None:
    project, _ = running
    before = call(project, {"read"}, "status", {"env": "test"}).structured_content
    for scopes in ({"read", "read:logs"}, {"deploy:staging"}):
        for tool, arguments in (("preview_up", {"pr": 6}), ("preview_down", {"pr": 6}),
                                ("release", {"env": "test"}), ("deploy_branch", {"branch": "main", "env": "test"})):
            result = call(project, scopes, tool, arguments)
            assert result.is_error, (tool, scopes)
            assert "robot may not deploy on env test" in result.content[0].text
            assert "deploy:test" in result.content[0].text  # the scope that would allow it
    assert call(project, {"read"}, "status", {"env": "test"}).structured_content == before


def recorded_release(project: Project, version: str) -> None:
    """A release of the app placed on staging, as `envplane release` records one."""
    from envplane.state import instances as recorded
    from envplane.state import releases as store
    from envplane.state.db import open_store

    db = open_store(project.root)
    try:
        images = {"web": {"ref": f"{project.app}-web:{version}", "id": "sha256:" + "1" * 64, "digest": None}}
        store.record_release(db, project.app, version, images, "alice", commit="c0ffee")
        done = recorded.start_deployment(db, project.app, "staging", "staging", "alice", version=version)
        recorded.finish_deployment(db, done.id, "ok")
    finally:
        db.close()


def test_promote_shows_its_dry_run_first_and_needs_another_persons_approval(
        running: tuple[Project, list[str]]) -> None:
    from envplane.state import audit
    from envplane.state import releases as store
    from envplane.state.db import open_store

    project, secrets = running
    recorded_release(project, "v1.0.7")
    bob = Principal("bob-laptop", "token", frozenset({"deploy:production"}), user="bob")
    pending = call(project, {"read"}, "approvals_pending", {})
    assert not pending.is_error, pending
    assert {"version": "v1.0.7", "env": "production", "from": "staging", "approvals": []} in \
        pending.structured_content["pending"]

    dry = call(project, bob, "promote", {"version": "v1.0.7"})
    assert not dry.is_error, dry
    move = dry.structured_content
    assert (move["dry_run"], move["env"], move["running"], move["approval_needed"]) == (True, "production", None, True)
    assert move["images"] == {"web": f"{project.app}-web:v1.0.7"} and "approval" in move["gates"]

    unapproved = call(project, bob, "promote", {"version": "v1.0.7", "confirm": True})
    assert unapproved.is_error and "approval: not approved" in unapproved.content[0].text, unapproved.content

    # alice approves in the dashboard: the server signs for her
    approvals.approve(project, "v1.0.7", "production", Principal("alice", "user", frozenset({"approve:*"})))
    waiting = call(project, {"read"}, "approvals_pending", {}).structured_content["pending"]
    [mine] = [w for w in waiting if w["version"] == "v1.0.7"]
    assert [(a["signed_by"], a["valid"]) for a in mine["approvals"]] == [("alice", True)]
    approved = call(project, bob, "promote", {"version": "v1.0.7", "confirm": True})
    # refused still, by the gates that need the version healthy on staging: not by its approval
    assert approved.is_error and "did not pass the gates" in approved.content[0].text
    assert "approval:" not in approved.content[0].text and "health:" in approved.content[0].text
    alice = Principal("alice-laptop", "token", frozenset({"deploy:production"}), user="alice")
    own = call(project, alice, "promote", {"version": "v1.0.7", "confirm": True})
    assert own.is_error and "approval: only alice approved, who promotes" in own.content[0].text
    nobody = call(project, {"deploy:production"}, "promote", {"version": "v1.0.7", "confirm": True})
    assert nobody.is_error and "acts for no user" in nobody.content[0].text

    db = open_store(project.root)
    try:
        assert store.history(db, project.app, "production", "production") == []  # nothing deployed
        rows = [(r.actor, r.outcome) for r in audit.entries(db, 100) if r.action == "mcp:promote"]
        assert rows[-4:] == [("bob (token bob-laptop)", "failed"), ("bob (token bob-laptop)", "failed"),
                             ("alice (token alice-laptop)", "failed"), ("token:robot", "failed")]
    finally:
        db.close()
    not_deployer = call(project, {"deploy:staging"}, "promote", {"version": "v1.0.7"})
    assert not_deployer.is_error and "may not deploy on env production" in not_deployer.content[0].text
    for result in (pending, dry, unapproved, approved, own):
        assert leaks(result, secrets) == []


def test_rollback_answers_its_dry_run_first(running: tuple[Project, list[str]]) -> None:
    project, secrets = running
    recorded_release(project, "v2.0.1")
    recorded_release(project, "v2.0.2")
    dry = call(project, {"deploy:staging"}, "rollback", {"env": "staging"})
    assert not dry.is_error, dry.content
    move = dry.structured_content
    assert (move["dry_run"], move["running"], move["version"], move["approval_needed"], move["ungated"]) == \
        (True, "v2.0.2", "v2.0.1", False, None)
    nothing = call(project, {"deploy:production"}, "rollback", {"env": "production"})
    assert nothing.is_error and "no earlier release on production" in nothing.content[0].text
    refused = call(project, {"deploy:test"}, "rollback", {"env": "staging"})
    assert refused.is_error and "may not deploy on env staging" in refused.content[0].text
    assert leaks(dry, secrets) == []

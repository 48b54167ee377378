"""Seed 003's deploy_branch through MCP: a feature branch pushed to the app's git remote runs
on staging (fetched into a worktree of staging's own; the server's checkout stays on main),
for a token with deploy:staging only. Real git, Docker and Compose; the SDK's in-process
client."""

from __future__ import annotations

import os
import urllib.request
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import anyio
import pytest
from mcp import Client

from envplane import actions
from envplane.server import mcp_tools
from envplane.server.auth import Principal
from envplane.spec.load import Project
from tests.support import (
    busybox_app,
    cli,
    commit_file,
    docker_engine,
    ensure_busybox_image,
    free_port_block,
    git,
    git_remote_with_app,
    need,
)

ENV = {"DATA_PATH": "", "ENVPLANE_SECRETS": "file", "ENVPLANE_SECRET_KEY": ""}


@pytest.fixture()
def server_checkout(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[Path, Path, int]]:
    """(the server's clone of the app, an author's clone, staging's port)."""
    need("a Docker engine", docker_engine(), "run scripts/services/docker.sh")
    ensure_busybox_image()
    for key, value in ENV.items():
        monkeypatch.setenv(key, value)
    base = free_port_block()
    name = f"mcb{os.getpid() % 1000}{base}"
    remote, author = git_remote_with_app(tmp_path, "app", lambda folder: busybox_app(folder, name, base))
    git("clone", "-q", str(remote), str(tmp_path / "server"), cwd=tmp_path)
    server = tmp_path / "server" / "app"
    try:
        yield server, author, base + 150
    finally:
        cli("down", "staging", "--purge", "--yes", cwd=server, env=ENV)


def call(project: Project, scopes: set[str], tool: str, arguments: dict[str, Any]) -> Any:
    def load(name: str, environ: Mapping[str, str]) -> Project:
        return actions.open_project(project.root, environ)

    apps = mcp_tools.Apps(lambda: [project.app], load, dict(os.environ))
    server = mcp_tools.build(apps, lambda ctx: Principal("ci", "token", frozenset(scopes)))

    async def go() -> Any:
        async with Client(server) as client:
            return await client.call_tool(tool, arguments)

    return anyio.run(go)


def served(port: int, path: str) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=10) as response:
        return str(response.read().decode())


def test_deploy_branch_runs_the_branch_on_staging_and_leaves_the_checkout_alone(
        server_checkout: tuple[Path, Path, int]) -> None:
    server, author, port = server_checkout
    git("checkout", "-q", "-b", "feature/hello", cwd=author)
    sha = commit_file(author, "app/www/hello.txt", "hello from the branch\n", "B: hello")
    git("push", "-q", "origin", "feature/hello", cwd=author)
    project = actions.open_project(server, os.environ)

    done = call(project, {"deploy:staging"}, "deploy_branch", {"branch": "feature/hello"})
    assert not done.is_error, done.content
    answer = done.structured_content
    assert (answer["branch"], answer["commit"], answer["instance"]) == ("feature/hello", sha, "staging")
    assert served(port, "/hello.txt") == "hello from the branch\n"
    assert not (server / "www" / "hello.txt").exists()  # the server's checkout is still main's
    assert git("rev-parse", "--abbrev-ref", "HEAD", cwd=server) == "main"
    status = call(project, {"read"}, "status", {"env": "staging"}).structured_content
    assert [(s["service"], s["health"], s["last_deploy"]) for s in status["services"]] == [("web", "healthy", "ok")]


def test_deploy_branch_refuses_what_it_must_not_do(server_checkout: tuple[Path, Path, int]) -> None:
    server, _, _ = server_checkout
    project = actions.open_project(server, os.environ)
    for arguments, scopes, said in (
            ({"branch": "nope"}, {"deploy:staging"}, "cannot fetch branch 'nope'"),
            ({"branch": "--upload-pack=touch /tmp/x"}, {"deploy:staging"}, "is not a branch name"),
            ({"branch": "main", "env": "production"}, {"deploy:*"}, "takes a version only through its gates"),
            ({"branch": "main", "env": "test"}, {"deploy:*"}, "no single instance"),
            ({"branch": "main"}, {"deploy:test", "read:logs"}, "ci may not deploy on env staging")):
        result = call(project, scopes, "deploy_branch", arguments)
        assert result.is_error and said in result.content[0].text, (arguments, result.content)
    assert call(project, {"read"}, "status", {"env": "staging"}).structured_content["services"] == []

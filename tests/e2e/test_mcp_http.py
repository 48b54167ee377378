"""#14 MCP over streamable HTTP at /mcp of a real `envplane serve`, driven by the SDK's own
HTTP client as an assistant connects: the bearer token decides who calls and what it may
do, a preview goes up and down through the tools, its logs come with the secret its
container printed masked, and no answer holds a secret value."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

import anyio
import httpx
import pytest
from mcp import Client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared._httpx_utils import create_mcp_http_client

from tests.api_kit import make_world, serving
from tests.mcp_kit import leaks, leaky_app
from tests.support import docker_engine, ensure_busybox_image, free_port_block, need

T = TypeVar("T")
ENV = {"DATA_PATH": "", "ENVPLANE_SECRETS": "file", "ENVPLANE_SECRET_KEY": ""}


def over_http(url: str, token: str, work: Callable[[Client], Awaitable[T]]) -> T:
    async def go() -> T:
        http = create_mcp_http_client(headers={"Authorization": f"Bearer {token}"})
        async with http, Client(streamable_http_client(url, http_client=http)) as client:
            return await work(client)

    return anyio.run(go)


def call(url: str, token: str, tool: str, arguments: dict[str, Any]) -> Any:
    async def work(client: Client) -> Any:
        return await client.call_tool(tool, arguments)

    return over_http(url, token, work)


def test_an_assistant_over_http_runs_a_preview_with_a_deploy_test_token(tmp_path: Path) -> None:
    need("a Docker engine", docker_engine(), "run scripts/services/docker.sh")
    ensure_busybox_image()
    folder = tmp_path / "app"
    folder.mkdir()
    name, secret = leaky_app(folder, free_port_block(), ENV)
    world = make_world(tmp_path, folder, name, ENV)
    try:
        with serving(world) as served:
            url = served.base + "/mcp"

            async def listing(client: Client) -> Any:
                return await client.list_tools()

            listed = over_http(url, world.tokens["reader"], listing)
            tools = {t.name: t for t in listed.tools}
            assert tools["status"].annotations.read_only_hint
            assert tools["preview_down"].annotations.destructive_hint

            refused = call(url, world.tokens["reader"], "preview_up", {"pr": 6})
            assert refused.is_error and "may not deploy on env test" in refused.content[0].text
            up = call(url, world.tokens["ci"], "preview_up", {"pr": 6})
            assert not up.is_error, up.content
            assert up.structured_content["instance"] == "pr-6"

            status = call(url, world.tokens["reader"], "status", {"env": "test"})
            assert [(s["instance"], s["service"], s["health"]) for s in status.structured_content["services"]] \
                == [("pr-6", "web", "healthy")]
            logs = call(url, world.tokens["logs"], "logs", {"env": "test", "pr": 6, "service": "web"})
            assert "starting with key=*** token=none" in logs.structured_content["lines"]
            down = call(url, world.tokens["ci"], "preview_down", {"pr": 6})
            assert not down.is_error, down.content
            for result in (listed, refused, up, status, logs, down):
                assert leaks(result, [secret]) == []
            audit = world.cli("audit", "log", "--json")
            assert '"mcp:preview_up"' in audit.stdout and '"token:ci"' in audit.stdout
    finally:
        world.cli("down", "test", "--pr", "6", "--purge")


def test_http_needs_a_valid_bearer_token_and_this_servers_name(tmp_path: Path) -> None:
    world = make_world(tmp_path)
    with serving(world) as served:
        url = served.base + "/mcp"
        hello = {"jsonrpc": "2.0", "id": 1, "method": "tools/list", "params": {}}
        accept = {"Accept": "application/json, text/event-stream"}
        for headers in ({}, world.auth("revoked"), world.auth("expired"), {"Authorization": "Bearer envp_nope"},
                        {"Authorization": "Basic eDp5"}):
            answer = httpx.post(url, json=hello, headers={**accept, **headers}, timeout=10)
            assert answer.status_code == 401, headers
            assert answer.headers["www-authenticate"].startswith("Bearer")
        rebound = httpx.post(url, json=hello, headers={**accept, **world.auth("reader"), "Host": "evil.example"},
                             timeout=10)
        assert rebound.status_code == 421  # DNS rebinding: a name that is not this server's

        async def listing(client: Client) -> Any:
            return await client.list_tools()

        assert {t.name for t in over_http(url, world.tokens["reader"], listing).tools} >= {"status", "promote"}


@pytest.mark.parametrize("allowed", ["envplane.example.com"])
def test_a_reverse_proxys_name_is_allowed_when_listed(tmp_path: Path, allowed: str) -> None:
    world = make_world(tmp_path, environ={"ENVPLANE_ALLOWED_HOSTS": allowed})
    with serving(world) as served:
        hello = {"jsonrpc": "2.0", "id": 1, "method": "tools/list", "params": {}}
        answer = httpx.post(served.base + "/mcp", json=hello, timeout=10,
                            headers={"Accept": "application/json, text/event-stream", "Host": allowed,
                                     "Origin": f"https://{allowed}", **world.auth("reader")})
        assert answer.status_code != 421, answer.text

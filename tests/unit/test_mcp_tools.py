"""#14 MCP: the tool list an assistant sees (names, annotations, arguments), and the pure
helpers that keep answers small and free of secret values."""

from __future__ import annotations

from typing import Any

import anyio
from mcp import Client

from envplane.secret import Secret
from envplane.server import mcp_tools
from envplane.spec.load import Project


def no_app(name: str, environ: object) -> Project:
    raise AssertionError("listing tools loads no app")


def listed() -> dict[str, Any]:
    def nobody(ctx: object) -> mcp_tools.Caller:
        raise AssertionError("listing tools needs no caller")

    async def go() -> dict[str, Any]:
        async with Client(mcp_tools.build(mcp_tools.Apps(lambda: [], no_app, {}), nobody)) as client:
            return {t.name: t for t in (await client.list_tools()).tools}

    return anyio.run(go)


def test_every_tool_is_listed_with_what_it_does_to_the_world() -> None:
    hints = {name: (t.annotations.read_only_hint, t.annotations.destructive_hint)
             for name, t in listed().items()}
    assert hints == {
        "status": (True, False), "plan": (True, False), "logs": (True, False), "approvals_pending": (True, False),
        "preview_up": (False, False),  # makes or updates a preview: nothing is lost
        "preview_down": (False, True), "deploy_branch": (False, True), "release": (False, True),
        "promote": (False, True), "rollback": (False, True),
    }
    tools = listed()
    assert tools["deploy_branch"].annotations.open_world_hint  # it fetches from the app's git remote
    assert tools["promote"].input_schema["properties"]["confirm"]["default"] is False  # a dry run first
    assert tools["rollback"].input_schema["properties"]["confirm"]["default"] is False


def test_read_tools_are_annotated_read_only_and_not_destructive() -> None:
    tools = listed()
    for name in ("status", "plan", "logs", "approvals_pending"):
        hints = tools[name].annotations
        assert (hints.read_only_hint, hints.destructive_hint, hints.open_world_hint) == (True, False, False), name
        assert tools[name].description  # what an assistant reads to pick a tool
    assert tools["logs"].input_schema["required"] == ["env", "service"]
    assert tools["plan"].input_schema["required"] == ["env"]
    assert "ctx" not in tools["status"].input_schema["properties"]


def test_masked_hides_secret_values_in_every_string_and_key() -> None:
    secret = Secret("s3cr3t-value")
    answer = {"lines": ["key=s3cr3t-value", "ok"], "s3cr3t-value": 1, "n": 2,
              "url": "postgres://u:s3cr3t%2Dvalue@db", "nested": [{"x": "a s3cr3t-value b"}]}
    assert mcp_tools.masked(answer, [secret]) == {
        "lines": ["key=***", "ok"], "***": 1, "n": 2, "url": "postgres://u:s3cr3t%2Dvalue@db",
        "nested": [{"x": "a *** b"}]}


def test_masked_hides_a_secret_in_the_forms_programs_print_it() -> None:
    secret = Secret("p@ss word/x")
    assert mcp_tools.masked(["p%40ss%20word%2Fx", "p%40ss+word%2Fx"], [secret]) == ["***", "***"]


def test_cap_keeps_the_newest_lines_that_fit() -> None:
    lines = [f"line {i:03d}" for i in range(100)]  # 8 bytes + newline each
    assert mcp_tools._cap(lines, 27) == ["line 097", "line 098", "line 099"]
    assert mcp_tools._cap(lines, 10_000) == lines
    assert mcp_tools._cap(["a" * 50 + "b" * 50], 50) == ["b" * 50]

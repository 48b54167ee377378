"""`envplane mcp`: envplane's tools for an AI assistant over MCP on stdio (server/mcp_tools.py)."""

from __future__ import annotations

import os

from envplane.cli.main import app


@app.command()
def mcp() -> None:
    """Serve envplane's MCP tools on stdin/stdout to the assistant that starts this command,
    acting as the server token in ENVPLANE_TOKEN (README: MCP)."""
    from envplane.secret import Secret
    from envplane.server import mcp_tools

    # Out of the environment the apps' Compose files are interpolated from, and that every
    # process this one starts inherits: no container or hook can be given the token.
    token = Secret(os.environ.pop(mcp_tools.TOKEN_ENV, "").strip())
    mcp_tools.serve_stdio(token, os.environ)

"""Shared by the MCP tests: an app whose container prints its secret at start, and a scan of
every answer for the instance's secret values."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

from tests.support import busybox_app

USER_SECRET_PREFIX = "mcp-user-secret-"
# The container prints its secret as a careless app does, at start and in its log; and the
# ENVPLANE_TOKEN of whoever rendered its Compose file, had they kept it in the environment.
LEAKY_COMPOSE = """\
services:
  web:
    image: busybox:stable
    environment:
      SEEN_TOKEN: "${ENVPLANE_TOKEN:-none}"
    command: ["sh", "-c", "echo \\"starting with key=$$API_KEY token=$$SEEN_TOKEN\\"; echo \\"db=$$DATABASE_URL\\";
              exec httpd -f -p 8080 -h /www"]
    ports: ["8080:8080"]
    volumes: ["./www:/www:ro"]
    init: true
"""


def leaky_app(folder: Path, port_base: int, env: dict[str, str], postgres: bool = False) -> tuple[str, str]:
    """A busybox app whose web service has the secret API_KEY (set for PR 6) and prints it
    (with `postgres`, its DATABASE_URL too, with the password envplane made); returns (app
    name, API_KEY's value)."""
    name = f"mcp{uuid.uuid4().hex[:6]}"
    busybox_app(folder, name, port_base)
    (folder / "compose.yaml").write_text(LEAKY_COMPOSE)
    spec = folder / "envplane.yaml"
    uses = "    uses: [postgres]\n" if postgres else ""
    spec.write_text(spec.read_text().replace("    health: /health.txt\n",
                                             "    health: /health.txt\n    secrets: [API_KEY]\n" + uses)
                    + ("resources:\n  postgres: {}\n" if postgres else ""))
    value = f"{USER_SECRET_PREFIX}{uuid.uuid4().hex}"
    stored = subprocess.run([sys.executable, "-m", "envplane", "secrets", "set", "test", "API_KEY", "-s", "web",
                             "--pr", "6"], cwd=folder, input=value, capture_output=True, text=True,
                            env={**os.environ, **env}, timeout=120)
    assert stored.returncode == 0, stored.stderr
    return name, value


def leaks(result: Any, secrets: list[str]) -> list[str]:
    """The secret values (and their common encodings) found anywhere in a tool's result: its
    text and its structured content."""
    from urllib.parse import quote

    dumped = result.model_dump_json() if hasattr(result, "model_dump_json") else json.dumps(result)
    return [s for s in secrets for form in {s, quote(s, safe=""), json.dumps(s)[1:-1]} if form in dumped]


def instance_secrets(folder: Path, name: str, env: dict[str, str]) -> list[str]:
    """Every value the app's secret store holds (user secrets, generated passwords), read
    from the store itself."""
    from envplane.backends.secrets import open_secret_store

    store = open_secret_store("file", folder, {**os.environ, **env}, name)
    return [v.reveal() for path in store.list(f"secret/data/{name}") for v in store.read(path).values()]

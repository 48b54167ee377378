"""The example app (examples/finance-report) copied for one e2e test: its own app name, its
images built, and the test services' admin URLs and keys as envplane's server variables."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tests.support import docker_engine, need

ROOT = Path(__file__).resolve().parents[1]
# envplane's server variable -> the test service's (scripts/services/*.sh print them)
SERVERS = {"ENVPLANE_POSTGRES_URL": "ENVPLANE_TEST_POSTGRES_URL",
           "ENVPLANE_S3_ENDPOINT": "ENVPLANE_TEST_S3_ENDPOINT",
           "ENVPLANE_S3_ACCESS_KEY": "ENVPLANE_TEST_S3_ACCESS_KEY",
           "ENVPLANE_S3_SECRET_KEY": "ENVPLANE_TEST_S3_SECRET_KEY",
           "ENVPLANE_REDIS_URL": "ENVPLANE_TEST_REDIS_URL"}


def servers() -> dict[str, str]:
    """The server variables for the running test services (a missing one fails in CI)."""
    env = {ours: os.environ.get(theirs, "") for ours, theirs in SERVERS.items()}
    need("PostgreSQL, SeaweedFS and Redis", all(env.values()), "run scripts/services/*.sh")
    return env


def example_copy(tmp_path: Path, prefix: str, environments: Callable[[str], str],
                 edit: Callable[[str], str] = lambda text: text) -> tuple[Path, str]:
    """A copy of the example under tmp_path named `{prefix}{6 hex}`, its spec's text through
    `edit`, then `environments:` with the lines `environments(name)` gives; images built."""
    need("a Docker engine", docker_engine(), "run scripts/services/docker.sh")
    subprocess.run(["bash", str(ROOT / "scripts" / "images.sh")], check=True, capture_output=True)
    folder = tmp_path / "finance-report"
    shutil.copytree(ROOT / "examples" / "finance-report", folder, ignore=shutil.ignore_patterns(".envplane"))
    name = f"{prefix}{uuid.uuid4().hex[:6]}"
    spec = folder / "envplane.yaml"
    text = spec.read_text().replace("app: finance-report", f"app: {name}").replace("prefix: report", f"prefix: {name}")
    spec.write_text(edit(text) + "environments:\n" + environments(name))
    return folder, name


def http(url: str, body: dict[str, object] | None = None) -> tuple[int, Any]:
    """GET (or POST a JSON body) and the status with the JSON answer, errors included."""
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data, method="POST" if data else "GET")
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())

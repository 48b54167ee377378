"""The registry's credentials (issue 12): `envplane secrets set ENV REGISTRY_PASSWORD
--service registry` stores them where a release's transfer reads them, when the spec names
a `registry:`; without one, `registry` is an unknown service like any other (exit 2)."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from pathlib import Path

from envplane.hosts.transfer import registry_credentials
from envplane.spec.load import load_project
from envplane.target import resolve
from tests.support import cli

COMPOSE = "services:\n  web:\n    image: busybox:stable\n"


def secrets_set(folder: Path, env: dict[str, str], *args: str, value: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "envplane", "secrets", "set", *args], cwd=folder, input=value,
                          capture_output=True, text=True, timeout=120, env={**os.environ, **env})


def test_registry_credentials_are_stored_for_the_transfer_only_when_the_spec_names_a_registry(
        tmp_path: Path) -> None:
    folder = tmp_path / "app"
    folder.mkdir()
    (folder / "compose.yaml").write_text(COMPOSE)
    spec = f"app: r{uuid.uuid4().hex[:8]}\ndomain: example.com\ncompose: compose.yaml\n"
    (folder / "envplane.yaml").write_text(spec)
    env = {"ENVPLANE_SECRETS": "file", "ENVPLANE_SECRET_KEY": "", "ENVPLANE_HOME": str(tmp_path / "home"),
           "DATA_PATH": ""}
    password = f"pw-{uuid.uuid4().hex}"

    refused = secrets_set(folder, env, "staging", "REGISTRY_PASSWORD", "--service", "registry", value=password)
    assert refused.returncode == 2 and "no service registry" in refused.stderr, refused.stderr

    (folder / "envplane.yaml").write_text(spec + "registry: 10.0.0.1:5000\n")
    for key, value in (("REGISTRY_USERNAME", "deploy"), ("REGISTRY_PASSWORD", password)):
        done = secrets_set(folder, env, "staging", key, "--service", "registry", value=value)
        assert done.returncode == 0, done.stderr
        assert password not in done.stdout + done.stderr
    typo = secrets_set(folder, env, "staging", "REGISTRY_PASSWORD", "--service", "registyr", value=password)
    assert typo.returncode == 2, typo.stderr

    project = load_project(folder / "envplane.yaml", {**os.environ, **env})
    username, secret = registry_credentials(project, resolve(project, "staging"))
    assert username is not None and username.reveal() == "deploy"
    assert secret is not None and secret.reveal() == password
    assert cli("secrets", "list", "staging", cwd=folder, env=env).returncode == 0

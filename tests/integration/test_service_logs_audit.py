"""#14: logs and the audit log as service functions, on a real running instance whose container
prints its secret: the log lines come as an iterator with the secret masked (follow streams
new lines; a service that is not up fails before anything is read), and the audit log and its
verification are the data the CLI prints."""

from __future__ import annotations

import json
import os
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from envplane import actions
from envplane.errors import NotFound, NothingToDo
from envplane.secret import MASK, masking
from envplane.service import audit, instances, logs, status
from tests.mcp_kit import leaky_app
from tests.support import busybox_app, cli, docker_engine, ensure_busybox_image, free_port_block, need

ENV = {"DATA_PATH": "", "ENVPLANE_SECRETS": "file", "ENVPLANE_SECRET_KEY": ""}


@pytest.fixture(scope="module")
def running(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[actions.Project, str]]:
    """The leaky app's PR 6 up (its container printed its secret); (project, secret)."""
    need("a Docker engine", docker_engine(), "run scripts/services/docker.sh")
    ensure_busybox_image()
    folder = tmp_path_factory.mktemp("logs-app")
    # a home of its own: the proxy's route store in the shared one may be another branch's
    ENV["ENVPLANE_HOME"] = str(tmp_path_factory.mktemp("home"))
    with pytest.MonkeyPatch.context() as patch:
        for key, value in ENV.items():
            patch.setenv(key, value)
        _, secret = leaky_app(folder, free_port_block(), ENV)
        project = actions.open_project(folder, os.environ)
        try:
            with masking():
                instances.up(project, "test", 6)
            yield project, secret
        finally:
            cli("down", "test", "--pr", "6", "--purge", cwd=folder, env=ENV)


def test_log_lines_come_masked_and_are_what_the_cli_prints(running: tuple[actions.Project, str]) -> None:
    project, secret = running
    found = list(logs.lines(project, "test", "web", 6))  # no masking() block: the service masks
    assert [line for line in found if line.startswith(f"starting with key={MASK}")]
    assert not [line for line in found if secret in line]
    printed = cli("logs", "test", "web", "--pr", "6", cwd=project.root, env=ENV)
    assert printed.returncode == 0, printed.stderr
    assert printed.stdout.splitlines() == found and secret not in printed.stdout + printed.stderr


def test_follow_streams_new_lines_until_the_caller_stops(running: tuple[actions.Project, str]) -> None:
    project, secret = running
    followed = logs.lines(project, "test", "web", 6, follow=True)
    assert next(followed).startswith(f"starting with key={MASK}")
    container = next(s.container for s in status.of_containers(project, "test") if s.instance == "pr-6")
    mark = f"later {uuid.uuid4().hex} {secret}"
    subprocess.run(["docker", "exec", container, "sh", "-c", f"echo '{mark}' > /proc/1/fd/1"], check=True)
    for line in followed:  # after the start's other lines (the leaky app prints its db= too)
        assert secret not in line
        if line.startswith("later "):
            break
    assert line == mark.replace(secret, MASK)
    followed.close()  # stops `docker logs --follow`
    readers = subprocess.run(["pgrep", "-f", f"docker logs --follow --tail 200 {container}"],
                             capture_output=True, text=True).stdout.split()
    assert readers == []


def test_a_service_that_is_not_up_fails_before_anything_is_read(running: tuple[actions.Project, str]) -> None:
    project, _ = running
    with pytest.raises(NotFound, match="the instance is not up"):
        logs.lines(project, "test", "web", 9)  # not iterated: the call itself says so


def test_the_audit_log_and_its_verification_are_what_the_cli_prints(
        running: tuple[actions.Project, str]) -> None:
    project, _ = running
    found = audit.log(project)
    assert ("up", "test", "pr-6", "ok") in [(r.action, r.env, r.instance, r.outcome) for r in found.entries]
    shown = json.loads(cli("audit", "log", "--json", cwd=project.root, env=ENV).stdout)
    assert shown == found.as_dict()["entries"]
    checked = audit.verify(project)
    assert checked.ok and checked.rows >= len(found.entries) and not checked.problems
    assert json.loads(cli("audit", "verify", "--json", cwd=project.root, env=ENV).stdout) == checked.as_dict()
    both = audit.checked_log(project)  # the dashboard's: both from one look at the store
    assert both.log == found and both.verified == checked


def test_an_instance_s_deployments_come_with_their_steps(running: tuple[actions.Project, str]) -> None:
    project, _ = running
    [last, *_] = instances.deployments(project, "test", "pr-6")
    assert last.status == "ok" and last.seconds is not None
    assert {"start", "health"} <= {kind for kind, _, status, _ in last.steps if status == "ok"}
    assert instances.deployments(project, "test", "pr-99") == []


def test_no_store_no_audit_log_and_none_is_made(tmp_path: Path) -> None:
    from envplane.state import location

    busybox_app(tmp_path, f"na{uuid.uuid4().hex[:6]}", free_port_block())
    project = actions.open_project(tmp_path, os.environ)
    for read in (audit.log, audit.verify, audit.checked_log, audit.start_keyed):
        with pytest.raises(NothingToDo, match="no audit log"):
            read(project)
    assert instances.deployments(project, "test", "pr-1") == []
    assert not location.state_path(project.root).exists()

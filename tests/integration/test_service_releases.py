"""#14: a version's way up as service functions (release, releases, approve, gates, promote,
rollback), on a real engine, state store and SSH signatures: they report progress through one
callback, take who acts as a parameter, raise instead of asking or printing, and return what
the CLI prints (its --json is their `as_dict()`)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from envplane import actions
from envplane.errors import GateError, NeedsConfirmation, NotFound
from envplane.events import Event, StepFinished
from envplane.release.gates import Verdict
from envplane.secret import masking
from envplane.service import releases
from envplane.state import audit, instances
from envplane.state import releases as store
from envplane.state.db import open_store
from tests.support import busybox_app, cli, docker_engine, ensure_busybox_image, free_port_block, need


def git(folder: Path, *args: str) -> None:
    subprocess.run(["git", "-C", str(folder), "-c", "user.email=dev@example.com", "-c", "user.name=dev", *args],
                   check=True, capture_output=True)


@pytest.fixture()
def keys(tmp_path: Path) -> Path:
    need("ssh-keygen", shutil.which("ssh-keygen") is not None, "apt-get install openssh-client")
    folder = tmp_path / "keys"
    folder.mkdir()
    for person in ("alice", "bob"):
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", person, "-f", str(folder / person)],
                       check=True)
    return folder


@pytest.fixture()
def project(tmp_path: Path, keys: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[actions.Project]:
    """The busybox app in a git repository, alice and bob in its approvers file."""
    env = {"DATA_PATH": "", "ENVPLANE_HOME": str(tmp_path / "home"), "SSH_AUTH_SOCK": "",
           "ENVPLANE_USER": "alice"}
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    folder = tmp_path / "app"
    busybox_app(folder, f"sr{uuid.uuid4().hex[:6]}", free_port_block())
    (folder / "approvers").write_text("".join(
        f"{p} {' '.join((keys / f'{p}.pub').read_text().split()[:2])}\n" for p in ("alice", "bob")))
    spec = folder / "envplane.yaml"
    # a loaded CI host must not fail the flow on the 200 ms default (unit-tested)
    spec.write_text(spec.read_text().replace("  production:\n", "  production:\n    strategy: recreate\n    gates: {p95_ms: 2000}\n")
                    + "approvers: approvers\n")
    (folder / ".gitignore").write_text(".envplane/\n")
    git(folder, "init", "-q")
    git(folder, "add", "-A")
    git(folder, "commit", "-qm", "the app")
    yield actions.open_project(folder, os.environ)
    for args in (["down", "production", "--purge", "--yes", "--no-backup"],
                 ["down", "staging", "--purge", "--yes", "--no-backup"]):
        cli(*args, cwd=folder, env=env)


def test_release_approve_gates_promote_through_the_service(
        project: actions.Project, keys: Path, capfd: pytest.CaptureFixture[str]) -> None:
    need("a Docker engine", docker_engine(), "run scripts/services/docker.sh")
    ensure_busybox_image()
    seen: list[Event] = []
    with masking():
        made = releases.create(project, "staging", report=seen.append)
    version = made.version
    assert made.deployed.env == "staging" and made.as_dict()["deployed"]["version"] == version
    assert {e.step for e in seen if isinstance(e, StepFinished)} >= {"start", "health", "record"}
    listed = releases.list_releases(project)
    assert [r.release.version for r in listed.releases] == [version]
    assert listed.releases[0].running_on == ("staging/staging",)
    shown = json.loads(cli("releases", "--json", cwd=project.root).stdout)
    assert shown == [r.as_dict() for r in listed.releases]  # the CLI's --json is the service's data

    # No approval yet: the gate refuses, and the refusal carries every gate's result.
    verdicts: list[Verdict] = []
    with masking(), pytest.raises(releases.PromotionRefused) as refused:
        releases.promote(project, version, "production", key=keys / "alice", on_verdict=verdicts.append)
    assert [r.gate for r in refused.value.promotion.verdict.failed] == ["approval"]
    assert refused.value.exit_code == 1 and "approval" in refused.value.message
    assert verdicts == [refused.value.promotion.verdict]
    assert refused.value.promotion.as_dict()["promoted"] is False

    # Bob approves; who he is comes from his signature, his display name from the caller.
    approved = releases.approve(project, version, "production", key=keys / "bob", actor="Bob B.")
    assert approved.signer.principals == ("bob",)
    assert approved.as_dict() | {"key": None} == {"version": version, "env": "production", "approved_by": ["bob"],
                                                  "key": None, "display_name": "Bob B."}
    found = releases.gates(project, version)
    assert [(env, a.display_name, a.problem) for env, a in found.approvals] == [("production", "Bob B.", None)]
    assert json.loads(cli("gates", version, "--json", cwd=project.root).stdout) == found.as_dict()

    seen.clear()
    with masking():
        promoted = releases.promote(project, version, "production", key=keys / "alice", report=seen.append,
                                    on_verdict=verdicts.append)
    assert promoted.deployed is not None and promoted.deployed.env == "production"
    assert verdicts[-1].ok and promoted.as_dict()["promoted"] is True
    assert {e.step for e in seen if isinstance(e, StepFinished)} >= {"start", "health"}
    with pytest.raises(NotFound, match="no earlier release"):  # only one version ever ran there
        releases.rollback(project, "production", key=keys / "alice")
    assert capfd.readouterr() == ("", "")  # the service layer never prints


def record(project: actions.Project) -> None:
    """Three releases on production in the state store: v1.0.44 never passed its gates,
    v1.0.45 did, v1.0.46 runs now."""
    db = open_store(project.root)
    try:
        for n, version in enumerate(("v1.0.44", "v1.0.45", "v1.0.46")):
            images = {"web": {"ref": f"{project.app}-web:{version}", "id": "sha256:" + str(n) * 64, "digest": None}}
            store.record_release(db, project.app, version, images, "alice", commit="c0ffee")
            if version != "v1.0.44":
                store.record_gates(db, project.app, version, "production", "alice", [("approval", True, "bob")])
            done = instances.start_deployment(db, project.app, "production", "production", "alice",
                                              version=version)
            instances.finish_deployment(db, done.id, "ok")
    finally:
        db.close()


def rows(project: actions.Project) -> list[tuple[str, str]]:
    db = open_store(project.root)
    try:
        return [(r.action, r.outcome) for r in sorted(audit.entries(db), key=lambda r: r.id) if r.app == project.app]
    finally:
        db.close()


def test_an_ungated_rollback_needs_yes_before_anything_is_signed_or_changed(
        project: actions.Project, keys: Path) -> None:
    record(project)
    before = rows(project)
    # No key anywhere (no --key, no agent, no ~/.ssh): asking comes before signing.
    with pytest.raises(NeedsConfirmation) as asked:
        releases.rollback(project, "production", "v1.0.44")
    assert asked.value.message == "v1.0.44 never passed the gates of production: a rollback to it skips them"
    assert asked.value.exit_code == 2 and "--yes" in asked.value.hint
    assert asked.value.question == "v1.0.44 never passed the gates of production. Roll back to it anyway?"
    assert rows(project) == before  # nothing recorded, nothing changed

    spec = project.root / "envplane.yaml"
    spec.write_text(spec.read_text().replace("gates: {p95_ms: 2000}", "gates: {p95_ms: 2000, rollback_ungated: refuse}"))
    strict = actions.open_project(project.root, os.environ)
    with pytest.raises(GateError, match="refused"):  # the spec refuses, even when confirmed
        releases.rollback(strict, "production", "v1.0.44", yes=True, key=keys / "alice")
    assert rows(project)[len(before):] == [("rollback-ungated", "refused")]


def test_a_release_is_read_with_where_it_runs_and_its_gates(project: actions.Project) -> None:
    record(project)
    shown = releases.show(project, "v1.0.45")
    assert shown.release.version == "v1.0.45" and shown.placed == ()  # v1.0.46 runs now
    assert [(g.env, g.gate, g.ok) for g in shown.gates] == [("production", "approval", True)]
    now = releases.show(project, "v1.0.46")
    assert [(p.env, p.instance) for p in now.placed] == [("production", "production")]
    listed = {r.release.version: r for r in releases.list_releases(project).releases}
    assert listed["v1.0.46"].placed == now.placed and listed["v1.0.46"].running_on == ("production/production",)
    with pytest.raises(NotFound, match=r"no release v9\.9\.9 of"):
        releases.show(project, "v9.9.9")

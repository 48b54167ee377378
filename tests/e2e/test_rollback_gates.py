"""Rollback is gated (issue 10.4): `rollback` to a version that never passed the env's gates
asks first (`--yes` without a terminal), says so in the audit log, and is refused outright
when the spec says `gates: {rollback_ungated: refuse}`.

The first tests record releases and deployments in the state store directly (as
test_signed_approvals.py does) and read what the CLI refuses before anything runs; the last
one releases the example on Docker and rolls production back for real.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from envplane.state import instances
from envplane.state import releases as store
from envplane.state.db import open_store
from tests import release_kit
from tests.release_kit import ReleaseApp
from tests.support import cli, need

ROOT = Path(__file__).resolve().parents[2]
UNGATED = "v1.0.44 never passed the gates of production: a rollback to it skips them"


@dataclass
class Recorded:
    """The example with three releases on production in the state store: v1.0.44 (deployed
    before production needed an approval: no gates passed), v1.0.45 (promoted, every gate
    passed) and v1.0.46 (promoted, running now)."""

    folder: Path
    name: str
    home: Path

    def run(self, *args: str, yes: bool = False) -> subprocess.CompletedProcess[str]:
        extra = ["--key", str(self.home / ".ssh" / "id_ed25519"), *(["--yes"] if yes else [])]
        return cli(*args, *extra, cwd=self.folder,
                   env={"HOME": str(self.home), "SSH_AUTH_SOCK": "", "DATA_PATH": "", "ENVPLANE_USER": "alice"})

    def audit(self) -> list[dict[str, object]]:
        done = cli("audit", "log", "--json", cwd=self.folder, env={"HOME": str(self.home)})
        return json.loads(done.stdout)  # type: ignore[no-any-return]

    def deployments(self) -> list[str]:
        db = open_store(self.folder)
        try:
            return [p.version for p in store.history(db, self.name, "production", "production")]
        finally:
            db.close()


@pytest.fixture()
def recorded(tmp_path: Path) -> Recorded:
    need("ssh-keygen", shutil.which("ssh-keygen") is not None, "apt-get install openssh-client")
    folder = tmp_path / "app"
    shutil.copytree(ROOT / "examples" / "finance-report", folder, ignore=shutil.ignore_patterns(".envplane"))
    name = f"rb-{uuid.uuid4().hex[:10]}"
    spec = folder / "envplane.yaml"
    home = tmp_path / "alice"
    (home / ".ssh").mkdir(parents=True)
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "alice", "-f",
                    str(home / ".ssh" / "id_ed25519")], check=True)
    public = " ".join((home / ".ssh" / "id_ed25519.pub").read_text().split()[:2])
    (folder / "approvers").write_text(f"alice {public}\n")
    spec.write_text(spec.read_text().replace("app: finance-report", f"app: {name}") + "approvers: approvers\n")
    db = open_store(folder)
    for n, version in enumerate(("v1.0.44", "v1.0.45", "v1.0.46")):
        images = {s: {"ref": f"{name}-{s}:{version}", "id": "sha256:" + str(n) * 64, "digest": None}
                  for s in ("backend", "frontend")}
        store.record_release(db, name, version, images, "alice", commit="c0ffee")
        if version != "v1.0.44":
            store.record_gates(db, name, version, "production", "alice",
                               [("order", True, "deployed on staging"), ("approval", True, "bob")])
        done = instances.start_deployment(db, name, "production", "production", "alice", version=version)
        instances.finish_deployment(db, done.id, "ok")
    # a failed evaluation of v1.0.44 does not count as passing
    store.record_gates(db, name, "v1.0.44", "production", "alice",
                       [("order", True, "deployed on staging"), ("approval", False, "not approved")])
    db.close()
    return Recorded(folder, name, home)


def test_a_rollback_to_a_version_that_never_passed_the_gates_asks_and_changes_nothing(recorded: Recorded
                                                                                       ) -> None:
    before = recorded.audit()
    asked = recorded.run("rollback", "production", "--to", "v1.0.44")
    assert asked.returncode == 2, asked.stderr
    assert f"error: {UNGATED}" in asked.stderr
    assert "pass --yes to roll back anyway" in asked.stderr and "envplane promote v1.0.44 --to production" \
        in asked.stderr
    as_json = recorded.run("rollback", "production", "--to", "v1.0.44", "--json")
    assert as_json.returncode == 2
    assert json.loads(as_json.stdout)["error"]["problems"][0]["message"] == UNGATED
    assert recorded.deployments()[0] == "v1.0.46"  # nothing deployed
    assert recorded.audit() == before  # nothing happened, so nothing to audit


def test_a_rollback_to_a_version_that_passed_the_gates_does_not_ask(recorded: Recorded) -> None:
    done = recorded.run("rollback", "production")  # the previous release: v1.0.45
    # It goes ahead (and fails here, at the images: this state store's releases were never
    # built) without a question, and without a rollback-ungated row.
    assert "never passed the gates" not in done.stderr and "--yes" not in done.stderr
    assert not [r for r in recorded.audit() if r["action"] == "rollback-ungated"]


def test_yes_takes_an_ungated_rollback_and_the_audit_log_says_so(recorded: Recorded) -> None:
    recorded.run("rollback", "production", "--to", "v1.0.44", yes=True)
    rows = [r for r in recorded.audit() if r["action"] == "rollback-ungated"]
    assert [(r["outcome"], r["detail"]["version"]) for r in rows] == [("confirmed", "v1.0.44")]  # type: ignore[index]
    assert rows[0]["detail"]["why"] == "v1.0.44 never passed the gates of production"  # type: ignore[index]
    assert rows[0]["detail"]["signed_by"]["principal"] == "alice"  # type: ignore[index]


def test_the_spec_can_refuse_ungated_rollbacks_even_with_yes(recorded: Recorded) -> None:
    spec = recorded.folder / "envplane.yaml"
    spec.write_text(spec.read_text() + "environments:\n  production:\n    gates: {rollback_ungated: refuse}\n")
    refused = recorded.run("rollback", "production", "--to", "v1.0.44", yes=True)
    assert refused.returncode == 1, refused.stderr
    assert "error: v1.0.44 never passed the gates of production: a rollback to it is refused " \
           "(gates.rollback_ungated: refuse)" in refused.stderr
    assert recorded.deployments()[0] == "v1.0.46"
    rows = [r for r in recorded.audit() if r["action"] == "rollback-ungated"]
    assert [(r["outcome"], r["detail"]["version"]) for r in rows] == [("refused", "v1.0.44")]  # type: ignore[index]
    # the approval gate stays on: only the rollback policy was set
    assert recorded.run("rollback", "production").returncode != 2


def test_a_typo_in_the_policy_is_a_spec_error(recorded: Recorded) -> None:
    spec = recorded.folder / "envplane.yaml"
    spec.write_text(spec.read_text() + "environments:\n  production:\n    gates: {rollback_ungated: never}\n")
    done = recorded.run("rollback", "production", "--to", "v1.0.44", yes=True)
    assert done.returncode == 2
    assert "environments.production.gates.rollback_ungated" in done.stderr and "envplane.yaml:" in done.stderr


@pytest.fixture()
def released(tmp_path: Path) -> Iterator[ReleaseApp]:
    app = release_kit.make(tmp_path)
    yield app
    release_kit.remove(app)


def test_an_ungated_rollback_on_docker_asks_then_deploys_then_is_refused_by_policy(released: ReleaseApp) -> None:
    """Production took v1.0.45 and v1.0.46 straight from `release` while it needed no approval;
    then the team turned the approval gate on. Neither version passed production's gates."""
    app = released
    spec = app.folder / "envplane.yaml"
    gates = "gates: {p95_ms: 1000}"
    spec.write_text(spec.read_text().replace(gates, "gates: {p95_ms: 1000, approval: false}"))
    assert app.json("release", "production")["version"] == "v1.0.45"  # type: ignore[index]
    app.commit("the second version")
    assert app.json("release", "production")["version"] == "v1.0.46"  # type: ignore[index]
    spec.write_text(spec.read_text().replace("approval: false", "approval: true"))
    assert app.served()["release"] == "v1.0.46"

    asked = app.envplane("rollback", "production")
    assert asked.returncode == 2 and "v1.0.45 never passed the gates of production" in asked.stderr
    assert app.served()["release"] == "v1.0.46"  # nothing changed

    rolled = app.json("rollback", "production", "--yes")
    assert rolled["version"] == "v1.0.45"  # type: ignore[index]
    assert app.served()["release"] == "v1.0.45"
    log = app.json("audit", "log")
    assert [(r["action"], r["outcome"]) for r in log if str(r["action"]).startswith("rollback")  # type: ignore[index]
            ] == [("rollback-ungated", "confirmed"), ("rollback", "ok")]

    spec.write_text(spec.read_text().replace("approval: true", "approval: true, rollback_ungated: refuse"))
    refused = app.envplane("rollback", "production", "--to", "v1.0.46", "--yes")
    assert refused.returncode == 1 and "a rollback to it is refused (gates.rollback_ungated: refuse)" \
        in refused.stderr
    assert app.served()["release"] == "v1.0.45"

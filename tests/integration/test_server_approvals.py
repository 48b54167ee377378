"""Four eyes through the server (issue 14): a user the server authenticated approves or
promotes, the server signs for them, and the gate counts it as it counts an SSH-signed one.

The service functions run as the API, the dashboard and MCP call them, with a Principal.
The release is recorded in the app's store directly; no gate here deploys (the version never
ran on staging, so the order gate refuses) and each test reads the approval gate's verdict.
"""

from __future__ import annotations

import base64
import os
import shutil
import subprocess
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from sqlalchemy import text

from envplane import actions
from envplane.errors import Forbidden
from envplane.release import flow
from envplane.release.signatures import SignatureError
from envplane.server import approvals
from envplane.server.auth import Principal
from envplane.spec.load import Project
from envplane.state import audit
from envplane.state import releases as store
from envplane.state.db import Store, open_store
from tests.support import need
from tests.unit.state.stores import fresh_postgres_database

ROOT = Path(__file__).resolve().parents[2]
VERSION = "v1.0.45"


def user(name: str, *scopes: str) -> Principal:
    return Principal(name, "user", frozenset(scopes or ("admin",)))


@dataclass
class App:
    folder: Path
    name: str
    environ: dict[str, str]

    def db(self) -> Store:
        """The app's state store: SQLite beside the spec, or the PostgreSQL database it names."""
        return open_store(self.folder, self.environ["ENVPLANE_STATE_URL"] or None)

    @property
    def project(self) -> Project:
        return actions.open_project(self.folder, self.environ)

    def approvers(self, *users: str, own: str = "") -> None:
        lines = "".join(approvals.approver_line(u, self.environ) + "\n" for u in users)
        (self.folder / "approvers").write_text(own + lines)

    def approval_gate(self, promoter: Principal) -> tuple[bool, str]:
        promotion = approvals.promote(self.project, VERSION, "production", promoter, environ=self.environ)
        assert promotion.deployed is None
        [gate] = [r for r in promotion.verdict.results if r.gate == "approval"]
        return gate.ok, gate.detail


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.integration)])
def state_url(request: pytest.FixtureRequest) -> Iterator[str]:
    """The app's store: SQLite (""), or a fresh database of the test PostgreSQL."""
    if request.param == "sqlite":
        yield ""
        return
    with fresh_postgres_database() as url:
        yield url


@pytest.fixture()
def app(tmp_path: Path, state_url: str) -> App:
    need("ssh-keygen", shutil.which("ssh-keygen") is not None, "apt-get install openssh-client")
    folder = tmp_path / "app"
    shutil.copytree(ROOT / "examples" / "finance-report", folder, ignore=shutil.ignore_patterns(".envplane"))
    name = f"srv-{uuid.uuid4().hex[:10]}"
    spec = folder / "envplane.yaml"
    spec.write_text(spec.read_text().replace("app: finance-report", f"app: {name}") + "approvers: approvers\n")
    # The server's host has an SSH key of its own, listed for alice: the server must never sign with it.
    home = tmp_path / "home"
    (home / ".ssh").mkdir(parents=True)
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "host", "-f",
                    str(home / ".ssh" / "id_ed25519")], check=True)
    environ = {**os.environ, "HOME": str(home), "SSH_AUTH_SOCK": "", "ENVPLANE_STATE_URL": state_url,
               "ENVPLANE_SERVER_HOME": str(tmp_path / "server"), "DATA_PATH": "",
               "ENVPLANE_AUDIT_KEY": base64.b64encode(b"s" * 32).decode()}
    db = open_store(folder, state_url or None)
    images = {s: {"ref": f"{name}-{s}:{VERSION}", "id": "sha256:" + "4" * 64, "digest": None, "built": True}
              for s in ("backend", "frontend")}
    store.record_release(db, name, VERSION, images, "alice", commit="c0ffee")
    db.close()
    made = App(folder, name, environ)
    host_key = " ".join((home / ".ssh" / "id_ed25519.pub").read_text().split()[:2])
    made.approvers("alice", "bob", own=f"alice {host_key}\n")
    return made


def test_a_server_users_approval_opens_the_gate_for_another_users_promotion(app: App) -> None:
    approved = approvals.approve(app.project, VERSION, "production", user("bob", "approve:production"),
                                 environ=app.environ)
    server_key = approved.signer.fingerprint
    assert approved.as_dict() == {"version": VERSION, "env": "production", "approved_by": ["bob"],
                                  "key": server_key, "via": "server", "display_name": "bob"}
    assert app.approval_gate(user("alice", "deploy:production")) == (True, f"approved by bob (key {server_key})")


def test_nobody_approves_their_own_promotion(app: App) -> None:
    approvals.approve(app.project, VERSION, "production", user("bob"), environ=app.environ)
    ok, detail = app.approval_gate(user("bob"))
    assert not ok
    assert detail.startswith("only bob approved, who promotes")


def test_the_approval_and_the_audit_row_name_the_user_the_server_proved(app: App) -> None:
    approvals.approve(app.project, VERSION, "production", user("bob"), environ=app.environ)
    db = app.db()
    [row] = store.approvals(db, app.name, VERSION, "production")
    entries = [e for e in audit.entries(db) if e.action == "approve"]
    db.close()
    assert (row.actor, row.principal, '"user":"bob"' in (row.payload or "")) == ("bob", "bob", True)
    [entry] = entries
    assert entry.actor == "bob"
    assert entry.detail["signed_by"] == {"principal": "bob", "key": row.key_fingerprint, "via": "server"}


def test_an_approval_row_edited_in_the_apps_store_to_another_user_does_not_count(app: App) -> None:
    # Someone who can write the app's state store but not read the server's key turns bob's
    # approval into alice's and promotes as bob.
    approvals.approve(app.project, VERSION, "production", user("bob"), environ=app.environ)
    db = app.db()
    with db.session() as session:
        session.execute(text("UPDATE approvals SET payload = replace(payload, '\"user\":\"bob\"', "
                             "'\"user\":\"alice\"'), actor = 'alice', principal = 'alice'"))
    [row] = store.approvals(db, app.name, VERSION, "production")
    assert '"user":"alice"' in (row.payload or "")
    db.close()
    ok, detail = app.approval_gate(user("bob"))
    assert not ok
    assert "does not verify" in detail


def test_a_user_the_approvers_file_does_not_list_cannot_approve_and_is_told_the_line(app: App) -> None:
    with pytest.raises(SignatureError) as caught:
        approvals.approve(app.project, VERSION, "production", user("carol"), environ=app.environ)
    assert "is not listed in" in caught.value.message and "for carol" in caught.value.message
    assert caught.value.hint.startswith("add the line `carol namespaces=\"envplane-server\" ssh-ed25519 ")
    db = app.db()
    assert store.approvals(db, app.name, VERSION, "production") == []
    db.close()


def test_scopes_decide_who_may_approve_and_promote_where(app: App) -> None:
    with pytest.raises(Forbidden, match="bob may not approve releases for production"):
        approvals.approve(app.project, VERSION, "production", user("bob", "approve:staging", "deploy:*"),
                          environ=app.environ)
    with pytest.raises(Forbidden, match="alice may not deploy to production"):
        approvals.promote(app.project, VERSION, "production", user("alice", "deploy:test", "approve:*"),
                          environ=app.environ)


def test_a_token_for_nobody_can_neither_approve_nor_promote_into_a_gated_env(app: App) -> None:
    ci = Principal("ci", "token", frozenset({"admin"}))
    with pytest.raises(Forbidden, match="token:ci acts for no user, and an approval is signed by a person"):
        approvals.approve(app.project, VERSION, "production", ci, environ=app.environ)
    with pytest.raises(Forbidden, match=r"a promotion into production \(its approval gate is on\)"):
        approvals.promote(app.project, VERSION, "production", ci, environ=app.environ)


def test_a_token_made_for_a_user_approves_as_that_user(app: App) -> None:
    laptop = Principal("laptop", "token", frozenset({"approve:production"}), "bob")
    approved = approvals.approve(app.project, VERSION, "production", laptop, environ=app.environ)
    assert approved.signer.principals == ("bob",) and approved.display_name == "bob (token laptop)"
    assert app.approval_gate(user("alice"))[0]


def test_the_same_person_through_ssh_and_through_the_server_is_one_person(app: App) -> None:
    # alice approves in the dashboard, then promotes with her own SSH key (listed as alice)
    approvals.approve(app.project, VERSION, "production", user("alice"), environ=app.environ)
    session = flow.lifecycle.open_session(app.project, app.environ)
    host_key = Path(app.environ["HOME"]) / ".ssh" / "id_ed25519"
    promotion = flow.promote(session, VERSION, "production", lambda *a: None, 5.0, key=host_key)
    [gate] = [r for r in promotion.verdict.results if r.gate == "approval"]
    assert not gate.ok and gate.detail.startswith("only alice approved, who promotes")


def test_the_servers_key_is_made_once_private_and_kept_out_of_the_store(app: App) -> None:
    key = approvals.server_key(app.environ)
    assert key == Path(app.environ["ENVPLANE_SERVER_HOME"]) / "approval_ed25519"
    assert oct(key.stat().st_mode & 0o777) == "0o600"
    assert approvals.server_key(app.environ) == key
    line = approvals.approver_line("alice", app.environ)
    assert line.startswith('alice namespaces="envplane-server" ssh-ed25519 ') and line.endswith(" envplane-server")
    secret = key.read_bytes()
    assert not any(secret in path.read_bytes() for path in app.folder.rglob("*") if path.is_file())

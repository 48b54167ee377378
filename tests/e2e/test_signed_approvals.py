"""Four eyes that cannot be faked (issue 9.7): approvals and promotions are signed with the
person's SSH key and checked against the spec's allowed-signers file; ENVPLANE_USER is only
a display name. And the audit log is chained with a key outside the state store, so
someone who can write the database cannot rewrite it unseen.

The CLI runs as a user runs it, each person with their own HOME (~/.ssh/id_ed25519). The
releases are recorded in the state store directly: building images is the release flow's
test (test_release_flow.py, which promotes a signed approval on Docker). No gate here can
deploy: the version never ran on staging, so the order gate refuses, and each test reads
the approval gate's own verdict.
"""

from __future__ import annotations

import json
import shutil
import sqlite3
import subprocess
import uuid
from dataclasses import dataclass
from pathlib import Path

import pytest
from sqlalchemy import text

from envplane.state import audit, instances
from envplane.state import releases as store
from envplane.state.db import open_store
from tests.support import cli, need

ROOT = Path(__file__).resolve().parents[2]
PEOPLE = ("alice", "bob", "mallory")


@dataclass
class App:
    folder: Path
    name: str
    homes: Path

    def run(self, *args: str, me: str, claim: str | None = None, key: str | None = None
            ) -> subprocess.CompletedProcess[str]:
        """envplane as `me` at my keyboard (my HOME, my ~/.ssh), ENVPLANE_USER=`claim`."""
        env = {"HOME": str(self.homes / me), "ENVPLANE_USER": claim or me, "SSH_AUTH_SOCK": "",
               "DATA_PATH": ""}
        extra = ["--key", str(self.homes / key / ".ssh" / "id_ed25519")] if key else []
        return cli(*args, *extra, cwd=self.folder, env=env)

    def json(self, *args: str, me: str, claim: str | None = None, key: str | None = None) -> object:
        done = self.run(*args, "--json", me=me, claim=claim, key=key)
        return json.loads(done.stdout)

    def public(self, person: str) -> str:
        return " ".join((self.homes / person / ".ssh" / "id_ed25519.pub").read_text().split()[:2])

    def approvers(self, lines: str) -> None:
        (self.folder / "approvers").write_text(lines)
        spec = self.folder / "envplane.yaml"
        if "approvers:" not in spec.read_text():
            spec.write_text(spec.read_text() + "approvers: approvers\n")

    def release(self, version: str, image_id: str) -> None:
        db = open_store(self.folder)
        images = {s: {"ref": f"{self.name}-{s}:{version}", "id": image_id, "digest": None, "built": True}
                  for s in ("backend", "frontend")}
        store.record_release(db, self.name, version, images, "alice", commit="c0ffee")
        db.close()


@pytest.fixture()
def app(tmp_path: Path) -> App:
    need("ssh-keygen", shutil.which("ssh-keygen") is not None, "apt-get install openssh-client")
    folder = tmp_path / "app"
    shutil.copytree(ROOT / "examples" / "finance-report", folder, ignore=shutil.ignore_patterns(".envplane"))
    name = f"sig-{uuid.uuid4().hex[:10]}"
    spec = folder / "envplane.yaml"
    spec.write_text(spec.read_text().replace("app: finance-report", f"app: {name}"))
    homes = tmp_path / "homes"
    for person in PEOPLE:
        (homes / person / ".ssh").mkdir(parents=True)
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", person, "-f",
                        str(homes / person / ".ssh" / "id_ed25519")], check=True)
    made = App(folder, name, homes)
    made.release("v1.0.45", "sha256:" + "4" * 64)
    return made


def approval_gate(app: App, version: str = "v1.0.45", me: str = "alice") -> dict[str, object] | None:
    """The approval gate's verdict when `me` promotes, or None when promote refused before gates."""
    done = app.run("promote", version, "--to", "production", "--json", me=me)
    assert done.returncode != 0  # never deploys here: the version never ran on staging
    result = json.loads(done.stdout)
    found = [g for g in result.get("gates", []) if g["gate"] == "approval"]
    return found[0] if found else None


def test_a_name_claimed_in_envplane_user_does_not_open_the_approval_gate(app: App) -> None:
    # Alice, at her keyboard, with her key, says she is bob.
    app.run("approve", "v1.0.45", "--to", "production", me="alice", claim="bob")
    gate = approval_gate(app)
    assert gate is None or gate["ok"] is False


def test_without_approvers_a_production_approval_gate_refuses_and_says_how_to_set_it_up(app: App) -> None:
    approve = app.run("approve", "v1.0.45", "--to", "production", me="bob")
    promote = app.run("promote", "v1.0.45", "--to", "production", me="alice")
    for done in (approve, promote):
        assert done.returncode == 2, done.stderr
        assert "names no `approvers:` file" in done.stderr
        assert "alice ssh-ed25519 AAAA" in done.stderr and "approvers: approvers" in done.stderr
    assert app.run("releases", me="alice").returncode == 0  # nothing else needs the file


def people(app: App) -> str:
    return f"alice {app.public('alice')}\nbob {app.public('bob')}\n"


def test_a_signed_approval_by_another_listed_person_opens_the_gate(app: App) -> None:
    app.approvers(people(app))
    approved = app.json("approve", "v1.0.45", "--to", "production", me="bob")
    bob_key = approved["key"]  # type: ignore[index]
    assert approved == {"version": "v1.0.45", "env": "production", "approved_by": ["bob"],
                        "key": bob_key, "display_name": "bob"}
    gate = approval_gate(app)
    assert gate == {"gate": "approval", "ok": True, "detail": f"approved by bob (key {bob_key})"}
    [stored] = app.json("gates", "v1.0.45", me="alice")["approvals"]  # type: ignore[index]
    assert (stored["principals"], stored["key"], stored["valid"]) == (["bob"], bob_key, True)


def test_a_claimed_name_with_alices_key_is_alice_and_the_audit_log_says_so(app: App) -> None:
    app.approvers(people(app))
    approved = app.json("approve", "v1.0.45", "--to", "production", me="alice", claim="bob")
    assert approved["approved_by"] == ["alice"]  # type: ignore[index]
    gate = approval_gate(app)
    assert gate is not None and gate["ok"] is False
    assert str(gate["detail"]).startswith("only alice approved, who promotes")
    log = app.json("audit", "log", me="alice")
    [row] = [r for r in log if r["action"] == "approve"]  # type: ignore[union-attr]
    assert row["actor"] == "alice"
    assert row["detail"]["signed_by"] == {"principal": "alice", "key": approved["key"]}  # type: ignore[index]
    assert row["detail"]["display_name"] == "bob"


def test_a_key_not_in_the_file_cannot_approve(app: App) -> None:
    app.approvers(people(app))
    refused = app.run("approve", "v1.0.45", "--to", "production", me="mallory", claim="bob")
    assert refused.returncode == 1
    assert "is not among the approvers in" in refused.stderr
    assert app.json("gates", "v1.0.45", me="alice")["approvals"] == []  # type: ignore[index]
    gate = approval_gate(app)
    assert gate == {"gate": "approval", "ok": False,
                    "detail": "not approved: `envplane approve VERSION --to ENV --key PATH`"}


def test_the_promoter_approving_with_a_second_principal_of_the_same_key_is_refused(app: App) -> None:
    app.approvers(people(app) + f"alice-ops {app.public('alice')}\n")
    approved = app.json("approve", "v1.0.45", "--to", "production", me="alice", claim="alice-ops")
    assert approved["approved_by"] == ["alice", "alice-ops"]  # type: ignore[index]
    gate = approval_gate(app)
    assert gate is not None and gate["ok"] is False and "only alice, alice-ops approved" in str(gate["detail"])


def test_an_approval_moved_to_another_version_or_images_does_not_count(app: App) -> None:
    """Someone with write access to the database moves bob's approval of v1.0.44 onto v1.0.45,
    then swaps the images v1.0.45 deploys: neither signature counts."""
    app.approvers(people(app))
    app.release("v1.0.44", "sha256:" + "3" * 64)
    app.run("approve", "v1.0.44", "--to", "production", me="bob")
    with sqlite3.connect(app.folder / ".envplane" / "state.db") as db:
        db.execute("UPDATE approvals SET version = 'v1.0.45'")
    gate = approval_gate(app)
    assert gate is not None and gate["ok"] is False
    assert "bob's: signed for version v1.0.44, not v1.0.45" in str(gate["detail"])

    with sqlite3.connect(app.folder / ".envplane" / "state.db") as db:
        db.execute("DELETE FROM approvals")
    app.run("approve", "v1.0.45", "--to", "production", me="bob")
    assert approval_gate(app)["ok"] is True  # type: ignore[index]
    with sqlite3.connect(app.folder / ".envplane" / "state.db") as db:
        db.execute("UPDATE releases SET images = replace(images, '4444', '6666') WHERE version = 'v1.0.45'")
    gate = approval_gate(app)
    assert gate is not None and gate["ok"] is False
    assert "signed for other images than those of v1.0.45" in str(gate["detail"])
    [stored] = app.json("gates", "v1.0.45", me="alice")["approvals"]  # type: ignore[index]
    assert (stored["valid"], stored["problem"]) == (False, "signed for other images than those of v1.0.45")


def test_a_person_removed_from_the_file_no_longer_counts(app: App) -> None:
    app.approvers(people(app))
    app.run("approve", "v1.0.45", "--to", "production", me="bob")
    app.approvers(f"alice {app.public('alice')}\n")
    gate = approval_gate(app)
    assert gate is not None and gate["ok"] is False and "does not verify for anyone" in str(gate["detail"])


def test_promote_and_rollback_need_a_listed_signer(app: App) -> None:
    app.approvers(people(app))
    app.run("approve", "v1.0.45", "--to", "production", me="bob")
    refused = app.run("promote", "v1.0.45", "--to", "production", me="mallory", claim="alice")
    assert refused.returncode == 1 and "is not among the approvers" in refused.stderr
    # mallory, with bob's approval in the store, cannot promote with alice's name either
    assert "gates" not in refused.stdout


def test_a_rollback_goes_only_to_a_release_that_ran_there(app: App) -> None:
    app.approvers(people(app))
    app.release("v1.0.44", "sha256:" + "3" * 64)
    app.release("v1.0.46", "sha256:" + "5" * 64)
    db = open_store(app.folder)
    for version in ("v1.0.44", "v1.0.45"):  # production ran these; v1.0.46 only ever was released
        done = instances.start_deployment(db, app.name, "production", "production", "alice", version=version)
        instances.finish_deployment(db, done.id, "ok")
    db.close()
    skipped = app.run("rollback", "production", "--to", "v1.0.46", me="alice")
    assert skipped.returncode == 1  # README's exit codes: not where the command looked
    assert "v1.0.46 never ran on production: a rollback returns to a release that did" in skipped.stderr


def test_an_audit_row_edited_and_rechained_without_the_key_is_named(app: App) -> None:
    app.approvers(people(app))
    app.run("approve", "v1.0.45", "--to", "production", me="bob")
    approval_gate(app)
    assert app.json("audit", "verify", me="alice")["ok"] is True  # type: ignore[index]
    # The attacker writes the database: bob's approval becomes carol's, every hash recomputed
    # as a plain SHA-256 chain, the way the log was chained before it had a key.
    with sqlite3.connect(app.folder / ".envplane" / "state.db") as db:
        db.execute("UPDATE audit_log SET actor = 'carol' WHERE action = 'approve'")
    rechain_without_the_key(app, key_ids=True)
    verified = app.run("audit", "verify", me="alice")
    assert verified.returncode == 1
    assert "hash mismatch (the row was edited)" in verified.stdout
    # and with the key ids removed too: the whole log as an older envplane's plain chain
    rechain_without_the_key(app, key_ids=False)
    verified = app.json("audit", "verify", me="alice")
    assert verified["ok"] is False  # type: ignore[index]
    written = app.run("approve", "v1.0.45", "--to", "production", me="bob")
    assert written.returncode == 1 and "is not keyed" in written.stderr


def rechain_without_the_key(app: App, key_ids: bool) -> None:
    """Recompute every row's hash as the plain SHA-256 chain (audit.chain_hash), as anyone
    who can write the database can; with key_ids=False the rows lose their key ids too."""
    db = open_store(app.folder)  # opened to read and rewrite, without the audit key
    prev = audit.GENESIS
    for entry in audit.entries(db):
        fields = {k: getattr(entry, k) for k in ("id", "at", "actor", "action", "app", "env", "instance",
                                                 "outcome", "detail")}
        key_id = entry.key_id if key_ids else None
        new = audit.chain_hash(prev, {**fields, "key_id": key_id} if key_id else fields)
        with db.engine.begin() as conn:
            conn.execute(text("UPDATE audit_log SET prev_hash = :p, hash = :h, key_id = :k WHERE id = :i"),
                         {"p": prev, "h": new, "k": key_id, "i": entry.id})
        prev = new
    db.close()

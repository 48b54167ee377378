"""Four eyes over HTTP (issue 14): bob approves through the API with a token made for him,
alice promotes with hers, and the approval gate counts bob's approval for alice's promotion
and never for bob's own. The server signs each for the user behind the token.

The release is recorded in the app's store directly: no gate here deploys (the version never
ran on staging, so order and health refuse) and each test reads whether `approval` failed too.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from envplane.server import approvals, auth
from envplane.server.app import create_app
from envplane.server.home import open_server_store
from envplane.state import releases as store
from envplane.state.db import open_store
from tests.api_kit import World, make_world, sse
from tests.support import need

VERSION = "v1.0.1"


@pytest.fixture()
def world(tmp_path: Path) -> World:
    need("ssh-keygen", shutil.which("ssh-keygen") is not None, "apt-get install openssh-client")
    made = make_world(tmp_path)
    server = open_server_store(made.environ)
    try:
        for person, scopes in (("alice", ["deploy:production"]), ("bob", ["approve:production", "deploy:*"])):
            auth.add_user(server, person, f"{person}'s password")
            _, raw = auth.create_token(server, person, scopes, user=person)
            made.tokens[person] = raw.reveal()
    finally:
        server.close()
    lines = "".join(approvals.approver_line(p, made.environ) + "\n" for p in ("alice", "bob"))
    (made.app_dir / "approvers").write_text(lines)
    spec = made.app_dir / "envplane.yaml"
    spec.write_text(spec.read_text() + "approvers: approvers\n")
    db = open_store(made.app_dir)
    images = {"web": {"ref": f"{made.app}-web:{VERSION}", "id": "sha256:" + "5" * 64, "digest": None,
                      "built": True}}
    store.record_release(db, made.app, VERSION, images, "alice", commit="c0ffee")
    db.close()
    return made


@pytest.fixture()
def client(world: World) -> Iterator[TestClient]:
    with TestClient(create_app(world.environ), raise_server_exceptions=False) as client:
        yield client


def promote(client: TestClient, world: World, token: str) -> dict[str, Any]:
    """The end of a promote job to production: its state and what it said."""
    started = client.post(f"/api/v1/apps/{world.app}/releases/{VERSION}/promote", headers=world.auth(token),
                          json={"to": "production"})
    assert started.status_code == 202, started.text
    with client.stream("GET", f"/api/v1/jobs/{started.json()['id']}/events", headers=world.auth(token)) as events:
        end = list(sse(events.iter_lines()))[-1]
    assert end["event"] == "end"
    data: dict[str, Any] = end["data"]
    return data


def failed_gates(end: dict[str, Any]) -> list[str]:
    """The gates a refused promotion names: `... gates failed: order, health, approval`."""
    assert end["state"] == "failed", end
    detail = str(end["problem"]["detail"])
    assert "gates failed: " in detail, detail
    return detail.split("gates failed: ", 1)[1].split(", ")


def test_bobs_approval_counts_for_alices_promotion_and_not_for_his_own(client: TestClient, world: World) -> None:
    approved = client.post(f"/api/v1/apps/{world.app}/releases/{VERSION}/approve", headers=world.auth("bob"),
                           json={"to": "production"})
    assert approved.status_code == 200, approved.text
    assert (approved.json()["approved_by"], approved.json()["via"]) == (["bob"], "server")

    by_alice = failed_gates(promote(client, world, "alice"))
    assert "order" in by_alice and "approval" not in by_alice
    assert "approval" in failed_gates(promote(client, world, "bob"))


def test_a_token_for_nobody_cannot_approve(client: TestClient, world: World) -> None:
    refused = client.post(f"/api/v1/apps/{world.app}/releases/{VERSION}/approve", headers=world.auth("approver"),
                          json={"to": "production"})
    assert refused.status_code == 403, refused.text
    assert "acts for no user" in refused.json()["detail"]
    db = open_store(world.app_dir)
    assert store.approvals(db, world.app, VERSION) == []
    db.close()

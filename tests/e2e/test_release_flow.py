"""A version's way to production, as a team drives it (issue 5): release to staging, gates
refuse without a second person's approval, approve, promote blue-green under load, release
and promote the next one, roll back; a version that is unhealthy in production never takes
traffic. Requests through the proxy are counted the whole time: none may fail.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.release_kit import Load, ReleaseApp, make, remove

HOOKS = ("hooks:\n  migrate:\n    service: backend\n"
         "    command: python3 -c 'import os; print(\"migrated\", os.environ[\"DEPLOY_ENV\"])'\n")
# v1.0.47's healthcheck fails in production only: staging takes it, production must not.
SICK_IN_PRODUCTION = ('test: ["CMD-SHELL", "test \\"$$DEPLOY_ENV\\" != production && '
                      'python3 healthcheck.py"]')


@pytest.fixture()
def app(tmp_path: Path) -> Iterator[ReleaseApp]:
    made = make(tmp_path, HOOKS)
    yield made
    remove(made)


def gates_of(result: dict) -> dict[str, bool]:  # type: ignore[type-arg]
    return {g["gate"]: g["ok"] for g in result["gates"]}


def test_release_gate_approve_promote_and_roll_back_without_losing_a_request(app: ReleaseApp) -> None:
    straight = app.envplane("release", "production")
    assert straight.returncode == 2 and "takes a version only through its gates" in straight.stderr
    first = app.json("release", "staging")
    assert first["version"] == "v1.0.45"  # the git tag v1.0.44 was the last one
    assert first["deployed"]["env"] == "staging"
    assert set(first["images"]) == {"backend", "frontend"}
    assert all(i["ref"].endswith(":v1.0.45") and i["id"].startswith("sha256:") for i in first["images"].values())
    assert app.staging()["release"] == "v1.0.45"

    refused = app.envplane("promote", "v1.0.45", "--to", "production", "--json")
    assert refused.returncode == 1
    gates = gates_of(json.loads(refused.stdout))
    assert gates == {"order": True, "health": True, "performance": True, "approval": False}
    assert app.containers("production") == []

    app.ok("approve", "v1.0.45", "--to", "production")  # alice, who will promote
    app.envplane("approve", "v1.0.45", "--to", "production", claim="bob").check_returncode()  # alice's key
    self_approved = app.envplane("promote", "v1.0.45", "--to", "production")
    assert self_approved.returncode == 1
    assert "only alice approved, who promotes" in self_approved.stdout
    app.ok("approve", "v1.0.45", "--to", "production", user="bob")  # signed with bob's own key

    promoted = app.json("promote", "v1.0.45", "--to", "production")
    assert promoted["promoted"] and all(gates_of(promoted).values())
    assert promoted["p95"]["requests"] == 50 and promoted["p95"]["errors"] == 0
    assert promoted["deployed"]["colour"] == "blue"
    assert app.served()["release"] == "v1.0.45"
    assert all(name.endswith("-blue") for name in app.containers("production"))

    app.commit("v2: a new feature")
    second = app.json("release", "staging")
    assert second["version"] == "v1.0.46"
    app.ok("approve", "v1.0.46", "--to", "production", user="bob")
    with Load(f"http://127.0.0.1:{app.listen}/api/health", app.production_host) as load:
        load.wait_for(20)
        promoted = app.json("promote", "v1.0.46", "--to", "production")
        assert promoted["deployed"]["colour"] == "green"
        seen = load.ok + load.failed
        load.wait_for(seen + 20)
        rolled = app.json("rollback", "production")
        load.wait_for(load.ok + load.failed + 20)
    assert load.failed == 0, dict(load.errors)
    assert load.releases["v1.0.45"] > 0 and load.releases["v1.0.46"] > 0
    assert (rolled["version"], rolled["colour"]) == ("v1.0.45", "blue")
    assert app.served()["release"] == "v1.0.45"
    assert all(name.endswith("-blue") for name in app.containers("production"))

    releases = {r["version"]: r for r in app.json("releases")}
    assert releases["v1.0.45"]["deployed_on"] == ["production/production (blue)"]
    assert releases["v1.0.46"]["deployed_on"] == ["staging/staging"]
    checked = app.json("gates", "v1.0.46")
    assert all(g["ok"] for g in checked["gates"])  # type: ignore[index]
    assert [(a["principals"], a["valid"]) for a in checked["approvals"]] == [(["bob"], True)]  # type: ignore[index]

    actions = [(r["action"], r["outcome"], r["actor"]) for r in app.json("audit", "log", "-n", "100")]
    for step in [("release", "ok", "alice"), ("deploy", "ok", "alice"), ("gates", "refused", "alice"),
                 ("approve", "ok", "bob"), ("gates", "ok", "alice"), ("promote", "ok", "alice"),
                 ("rollback", "ok", "alice")]:
        assert step in actions
    promoted_row = next(r for r in app.json("audit", "log", "-n", "100")  # type: ignore[union-attr]
                        if (r["action"], r["outcome"]) == ("promote", "ok"))
    assert promoted_row["detail"]["signed_by"]["principal"] == "alice"
    assert promoted_row["detail"]["signed_by"]["key"].startswith("SHA256:")
    assert app.json("audit", "verify")["ok"] is True


def test_a_version_unhealthy_in_production_never_takes_traffic(app: ReleaseApp) -> None:
    app.ok("release", "staging")
    app.ok("approve", "v1.0.45", "--to", "production", user="bob")
    app.ok("promote", "v1.0.45", "--to", "production")
    compose = app.folder / "compose.yaml"
    compose.write_text(compose.read_text().replace('test: ["CMD", "python3", "healthcheck.py"]',
                                                   SICK_IN_PRODUCTION))
    app.commit("v3: a healthcheck production fails")
    assert app.json("release", "staging")["version"] == "v1.0.46"
    assert app.staging()["release"] == "v1.0.46"
    app.ok("approve", "v1.0.46", "--to", "production", user="bob")
    with Load(f"http://127.0.0.1:{app.listen}/api/health", app.production_host) as load:
        load.wait_for(20)
        failed = app.envplane("promote", "v1.0.46", "--to", "production", "--timeout", "8")
        load.wait_for(load.ok + load.failed + 20)
    assert failed.returncode != 0
    assert "not healthy after 8 s: backend" in failed.stderr
    assert load.failed == 0, dict(load.errors)
    assert set(load.releases) == {"v1.0.45"}
    assert app.served()["release"] == "v1.0.45"
    assert all(name.endswith("-blue") for name in app.containers("production"))  # green removed
    placed = {r["version"]: r["deployed_on"] for r in app.json("releases")}
    assert placed["v1.0.45"] == ["production/production (blue)"]
    last = app.json("audit", "log", "-n", "1")[0]
    assert (last["action"], last["outcome"], last["detail"]["version"]) == ("promote", "failed", "v1.0.46")

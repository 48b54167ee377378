"""Releases of a small app on a real engine and a real Caddy.

Blue-green: a failing migrate hook stops the deploy before the switch, a failing
post_deploy hook switches back, and in both cases the old colour keeps serving. Which
release answers is read through the proxy from a CGI script that prints ENVPLANE_RELEASE.
Promotion from a PR env to staging through report gates (JUnit, changelog, migrations).
"""

from __future__ import annotations

import json
import os
import signal
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.release_kit import free_port, git, require_services
from tests.support import CliApp, busybox_app, free_port_block

# The hooks fail for one version in production only, so staging takes every version.
HOOKS = """\
hooks:
  migrate: {service: web, command: 'test "$ENVPLANE_RELEASE/$DEPLOY_ENV" != v1.0.1/production'}
  post_deploy: {service: web, command: 'test "$ENVPLANE_RELEASE/$DEPLOY_ENV" != v1.0.2/production'}
"""


class App(CliApp):
    def served(self, host: str = "") -> str:
        request = urllib.request.Request(f"http://127.0.0.1:{self.listen}/cgi-bin/release",
                                         headers={"Host": host or f"{self.name}.example.com"})
        with urllib.request.urlopen(request, timeout=10) as response:
            return str(response.read().decode().strip())

    def release(self, message: str) -> None:
        (self.folder / "CHANGES.txt").open("a").write(message + "\n")
        git(self.folder, "add", "-A")
        git(self.folder, "commit", "-qm", message)
        self.ok("release", "staging")

    def colours(self) -> set[str]:
        code, out, _ = self.run("status", "production", "--json")
        assert code == 0
        return {c["colour"] for c in json.loads(out)}


@pytest.fixture()
def app(tmp_path: Path) -> Iterator[App]:
    require_services()
    name = f"bg{free_port() % 100000}"
    block = free_port_block(40)  # PR 3 of test at +20, staging at +30
    folder = busybox_app(tmp_path / "app", name, block, env_ports=False)
    cgi = folder / "www" / "cgi-bin"
    cgi.mkdir()
    (cgi / "release").write_text('#!/bin/sh\necho "Content-Type: text/plain"\necho\necho "$ENVPLANE_RELEASE"\n')
    (cgi / "release").chmod(0o755)
    staging = block + 30
    spec = folder / "envplane.yaml"
    # The web serves files and keeps nothing in its volume: both colours may mount it.
    spec.write_text(spec.read_text().replace("    health: /health.txt\n",
                                             "    health: /health.txt\n    stateful: false\n") + (
        f"    ports:\n      web: {{8080: {staging}}}\n"
        f"  production:\n    data_path: {tmp_path}/data/{{app}}/production\n    drain_seconds: 0.5\n"
        "    gates: {p95: false, approval: false}\n" + HOOKS))
    spec.write_text(spec.read_text().replace("/tmp/envplane-tests/{app}/staging", f"{tmp_path}/data/{{app}}/staging"))
    (folder / ".gitignore").write_text(".envplane/\n")
    git(folder, "init", "-q")
    git(folder, "add", "-A")
    git(folder, "commit", "-qm", "the app")
    listen, admin = free_port(), free_port()
    env = {"ENVPLANE_HOME": str(tmp_path / "home"), "ENVPLANE_CADDY_ADMIN": f"http://127.0.0.1:{admin}",
           "ENVPLANE_CADDY_LISTEN": f"127.0.0.1:{listen}",
           "DATA_PATH": ""}
    made = App(folder, name, env, listen)
    made.ok("proxy", "up", "--listen", f"127.0.0.1:{listen}", "--admin", f"127.0.0.1:{admin}")
    yield made
    # PR 3 too: a test that fails before its own purge left it running for hours.
    made.run("down", "test", "--pr", "3", "--purge")
    for env_name in ("production", "staging"):
        made.run("down", env_name, "--purge", "--yes")
    made.run("proxy", "down", "--admin", f"127.0.0.1:{admin}")


def test_a_failing_hook_leaves_the_old_colour_serving(app: App, tmp_path: Path) -> None:
    app.release("v1.0.0")
    app.ok("promote", "v1.0.0", "--to", "production")
    assert app.served() == "v1.0.0" and app.colours() == {"blue"}

    app.release("v1.0.1: its migration fails in production")
    code, _, err = app.run("promote", "v1.0.1", "--to", "production")
    assert code == 1 and "run `test" in err and "in web" in err
    assert app.served() == "v1.0.0" and app.colours() == {"blue"}

    app.release("v1.0.2: its post_deploy hook fails in production")
    code, _, err = app.run("promote", "v1.0.2", "--to", "production")
    assert code == 1
    assert app.served() == "v1.0.0" and app.colours() == {"blue"}  # switched back, green gone

    code, _, err = app.run("rollback", "production")
    assert code == 1 and "has run only v1.0.0" in err  # README's exit codes: nothing to go back to
    code, _, err = app.run("promote", "v9.9.9", "--to", "production")
    assert code == 1 and "no release v9.9.9" in err
    code, _, err = app.run("up", "production")
    assert code == 2 and "runs blue-green (colour blue)" in err
    assert app.served() == "v1.0.0" and app.colours() == {"blue"}

    app.ok("down", "production")
    assert app.colours() == set()
    assert not (tmp_path / "home" / "proxy" / "live" / app.name / "production").exists()
    with pytest.raises(urllib.error.HTTPError) as gone:
        app.served()
    assert gone.value.code == 404


JUNIT = '<testsuites><testsuite name="t" tests="{n}" failures="{f}" errors="0"/></testsuites>'


def test_promote_from_a_pr_env_to_staging_through_report_gates(app: App) -> None:
    spec = app.folder / "envplane.yaml"
    spec.write_text(spec.read_text().replace("  staging:\n", (
        "  staging:\n    gates:\n      junit: reports/junit-{version}.xml\n"
        "      changelog: CHANGELOG.md\n      migrations: true\n"), 1))
    app.release("v1.0.0")  # to staging: the release itself
    (app.folder / "CHANGES.txt").open("a").write("next\n")
    git(app.folder, "commit", "-qam", "next")
    made = json.loads(app.ok("release", "test", "--pr", "3", "--json"))
    assert (made["version"], made["deployed"]["instance"]) == ("v1.0.1", "pr-3")

    code, out, _ = app.run("promote", "v1.0.1", "--to", "staging", "--json")
    gates = {g["gate"]: (g["ok"], g["detail"]) for g in json.loads(out)["gates"]}
    assert code == 1
    assert gates["order"][0] and gates["health"][0] and gates["migrations"][0]
    assert gates["tests"] == (False, "no JUnit report for this version")
    assert gates["changelog"] == (False, "not so: CHANGELOG.md has a section for v1.0.1")
    assert "approval" not in gates and "performance" not in gates

    (app.folder / "reports").mkdir()
    (app.folder / "reports" / "junit-v1.0.1.xml").write_text(JUNIT.format(n=12, f=1))
    (app.folder / "CHANGELOG.md").write_text("# Changelog\n\n## [1.0.1] - 2026-11-23\n- next\n")
    code, out, _ = app.run("promote", "v1.0.1", "--to", "staging", "--json")
    failed = {g["gate"]: g["detail"] for g in json.loads(out)["gates"] if not g["ok"]}
    assert code == 1 and failed == {"tests": "12 tests, 1 failed"}

    (app.folder / "reports" / "junit-v1.0.1.xml").write_text(JUNIT.format(n=12, f=0))
    promoted = json.loads(app.ok("promote", "v1.0.1", "--to", "staging", "--json"))
    assert promoted["deployed"]["env"] == "staging" and promoted["deployed"]["colour"] is None
    shown = {(g["env"], g["gate"]): g["ok"] for g in json.loads(app.ok("gates", "v1.0.1", "--json"))["gates"]}
    assert shown == {("staging", g): True for g in ("order", "health", "tests", "migrations", "changelog")}
    placed = {r["version"]: r["deployed_on"] for r in json.loads(app.ok("releases", "--json"))}
    assert placed == {"v1.0.1": ["staging/staging", "test/pr-3"], "v1.0.0": []}
    assert [r["version"] for r in json.loads(app.ok("releases", "test", "--json"))] == ["v1.0.1"]
    app.run("down", "test", "--pr", "3", "--purge")


def test_a_restarted_or_killed_proxy_routes_every_instance_again_on_the_live_colour(app: App, tmp_path: Path
                                                                                    ) -> None:
    """After `proxy down`/`proxy up`, a SIGKILL or a reboot no route came back: a routed
    staging answered 404 through the restarted proxy (issue 9.6)."""
    spec = app.folder / "envplane.yaml"
    spec.write_text(spec.read_text().replace(HOOKS, ""))
    app.release("v1.0.0")
    app.ok("promote", "v1.0.0", "--to", "production")
    app.release("v1.0.1")
    promoted = json.loads(app.ok("promote", "v1.0.1", "--to", "production", "--json"))
    assert promoted["deployed"]["urls"] == {"web": f"http://{app.name}.localhost:{app.listen}/"}
    assert app.colours() == {"green"}
    admin = app.env["ENVPLANE_CADDY_ADMIN"].removeprefix("http://")

    def serving() -> tuple[str, str]:
        return app.served(), app.served(f"{app.name}-staging.localhost")

    assert serving() == ("v1.0.1", "v1.0.1")
    app.ok("proxy", "down", "--admin", admin)
    with pytest.raises(urllib.error.URLError):
        app.served()
    app.ok("proxy", "up", "--admin", admin)
    assert serving() == ("v1.0.1", "v1.0.1")

    pid = int((tmp_path / "home" / "proxy" / "caddy.pid").read_text())
    os.kill(pid, signal.SIGKILL)
    while True:  # until the port is closed: a killed process lets go at once
        try:
            app.served()
        except OSError:  # refused, or reset mid-request
            break
    app.ok("proxy", "up", "--admin", admin)
    assert serving() == ("v1.0.1", "v1.0.1")
    assert app.colours() == {"green"}

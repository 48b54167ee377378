"""Every command in its failure modes, as a careless user meets them (#10.10, #10.12).

Each case runs the CLI in a fresh process and checks README's exit code table — 0 done or
nothing to do, 1 the operation failed, 2 bad input or usage — a message that says what is
true, and that nothing changed where it matters: no audit row, no instance row, and a
command that only reads creates no state store.
"""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.support import cli, docker_engine, ensure_busybox_image, free_port_block, need

COMPOSE = """\
services:
  web:
    image: busybox:stable
    command: ["httpd", "-f", "-p", "8080", "-h", "/www"]
    ports: ["8080:8080"]
    volumes: ["./www:/www:ro"]
    init: true
  worker:
    image: busybox:stable
    command: ["sleep", "100000"]
    init: true
"""


def make_app(folder: Path, port_base: int) -> Path:
    """A small app of one's own: a web service and a worker."""
    (folder / "www").mkdir(parents=True)
    (folder / "www" / "health.txt").write_text("ok\n")
    (folder / "compose.yaml").write_text(COMPOSE)
    (folder / "envplane.yaml").write_text(
        f"app: exits-{os.getpid()}\ndomain: example.com\ncompose: compose.yaml\n"
        "services:\n  web:\n    public: 8080\n    health: /health.txt\n"
        f"environments:\n  test:\n    port_base: {port_base}\n"
        f"  staging:\n    data_path: {folder}/data/{{app}}/staging\n"
    )
    return folder


STORE = Path(".envplane") / "state.db"


def rows(app: Path) -> dict[str, int]:
    """Audit and instance rows in the app's state store (none when there is no store)."""
    if not (app / STORE).exists():
        return {"audit": 0, "instances": 0}
    with sqlite3.connect(app / STORE) as db:
        return {"audit": db.execute("SELECT count(*) FROM audit_log").fetchone()[0],
                "instances": db.execute("SELECT count(*) FROM instances").fetchone()[0]}


def _outcomes(app: Path) -> list[str]:
    with sqlite3.connect(app / STORE) as db:
        return [row[0] for row in db.execute("SELECT outcome FROM audit_log ORDER BY id")]


@dataclass(frozen=True)
class Case:
    args: tuple[str, ...]
    code: int
    says: str
    reads_only: bool = True  # creates no state store
    audited: bool = False  # a failed attempt to change something is in the audit log
    stdin: str | None = None
    env: dict[str, str] = field(default_factory=dict)

    def __str__(self) -> str:
        return " ".join(self.args)


NO_ENGINE = {"DOCKER_HOST": "unix:///nonexistent/docker.sock"}
GONE = "20261202T004420Z-3fa9c1"  # a backup id of the right shape that no store holds

CASES = [
    # unknown env: bad input, for every command that takes one
    *(Case((*args, "qa", *rest), 2, "unknown environment 'qa'") for args, rest in [
        (("plan",), ()), (("render",), ()), (("up",), ()), (("down",), ()), (("status",), ()),
        (("logs",), ("web",)), (("releases",), ()), (("provision",), ()), (("backup",), ()),
        (("backups",), ()), (("secrets", "list"), ()), (("release",), ()), (("rollback",), ()),
        (("platform", "up"), ()), (("platform", "down"), ())]),
    # unknown service: bad input that lists the services
    Case(("logs", "staging", "webb"), 2, "no service webb in {app} staging (services: web, worker)"),
    Case(("secrets", "get", "staging", "API_KEY", "-s", "webb"), 2, "no service webb"),
    Case(("secrets", "set", "staging", "API_KEY", "-s", "webb"), 2, "no service webb", stdin="value\n"),
    Case(("secrets", "rm", "staging", "API_KEY", "-s", "wbe"), 2, "did you mean web?"),
    # malformed values
    Case(("plan", "test", "--pr", "0"), 2, "PR number must be 1 or more"),
    Case(("plan", "test"), 2, "say which"),
    Case(("gates", "1.0"), 2, "'1.0' is not a version"),
    Case(("rollback", "production", "--to", "latest"), 2, "'latest' is not a version"),
    Case(("restore", "staging", "--from", "nope"), 2, "is not a backup id"),
    Case(("platform", "up", "local"), 2, "it has no platform"),
    Case(("webhook",), 2, "GITHUB_WEBHOOK_SECRET is not set", env={"GITHUB_WEBHOOK_SECRET": ""}),
    Case(("init",), 2, "exists already"),
    # nothing to do: said, exit 0, nothing written
    Case(("preview", "down", "--pr", "99"), 0, "{app} pr-99: nothing to remove"),
    Case(("down", "test", "--pr", "99", "--purge"), 0, "nothing to remove"),
    Case(("down", "staging"), 0, "{app} staging is not running: nothing to stop"),
    Case(("status",), 0, "nothing of {app} runs"),
    Case(("status", "staging"), 0, "nothing of {app} runs in env staging"),
    Case(("preview", "list"), 0, "no previews of {app}"),
    Case(("preview", "gc"), 0, "nothing to collect"),
    Case(("releases",), 0, "no release of {app} yet"),
    Case(("audit", "log"), 0, "no audit log of {app} here yet"),
    Case(("audit", "verify"), 0, "no audit log of {app} here yet"),
    Case(("audit", "key"), 0, "no audit log of {app} here yet"),
    Case(("secrets", "list", "staging"), 0, "no secrets under secret/data/{app}/staging/"),
    Case(("secrets", "rm", "staging", "API_KEY", "-s", "web"), 0, "nothing to remove"),
    Case(("secrets", "rotate-key"), 0, "nothing to re-encrypt"),
    Case(("provision", "staging"), 0, "nothing to provision"),
    Case(("proxy", "down"), 0, "proxy was not running"),
    Case(("proxy", "routes"), 0, "the proxy does not run"),
    # the command was right, the world has no such thing: the operation failed
    Case(("logs", "staging", "web"), 1, "web of {app} staging has no container: the instance is not up"),
    Case(("logs", "test", "worker", "--pr", "99"), 1, "worker of {app} pr-99 has no container"),
    Case(("secrets", "get", "staging", "API_KEY", "-s", "web"), 1, "no secret API_KEY"),
    Case(("gates", "v1.0.45"), 1, "no release v1.0.45 of {app}"),
    Case(("promote", "v1.0.45", "--to", "production"), 1, "no release v1.0.45 of {app}", reads_only=False),
    Case(("approve", "v1.0.45", "--to", "production"), 1, "no release v1.0.45 of {app}", reads_only=False),
    Case(("rollback", "production"), 1, "{app} has no release deployed on production", reads_only=False),
    Case(("rollback", "production", "--to", "v1.0.1"), 1, "no release deployed on production",
         reads_only=False),
    Case(("restore", "staging", "--from", GONE), 1, f"backup {GONE} of {{app}} staging is not in",
         reads_only=False),
    # no engine: every command that needs one fails with the same line, and says nothing else
    Case(("up", "staging"), 1, "no Docker engine answers", env=NO_ENGINE, reads_only=False, audited=True),
    *(Case(args, 1, "no Docker engine answers", env=NO_ENGINE) for args in [
        ("down", "staging"), ("preview", "down", "--pr", "99"), ("status",),
        ("logs", "staging", "web"), ("verify",)]),
]


@pytest.fixture()
def app(tmp_path: Path) -> Path:
    return make_app(tmp_path / "app", free_port_block(10))


@pytest.mark.parametrize("case", CASES, ids=str)
def test_a_failure_mode_gets_its_exit_code_and_a_true_message(app: Path, case: Case) -> None:
    if case.env is not NO_ENGINE and case.args[0] in ("up", "down", "status", "logs", "verify", "preview"):
        need("a Docker engine", docker_engine(), "run scripts/services/docker.sh")
    name = (app / "envplane.yaml").read_text().split()[1]
    done = _run(app, case)
    said = done.stdout + done.stderr
    assert done.returncode == case.code, said
    assert case.says.format(app=name) in said
    assert "Traceback" not in said and "internal error" not in said
    if case.audited:
        assert _outcomes(app) == ["failed"], said
    else:
        assert rows(app) == {"audit": 0, "instances": 0}, said  # nothing recorded as done
    if case.reads_only:
        assert not (app / STORE).exists(), f"{case} created a state store"
    if case.args[0] == "secrets":  # nothing was stored, so nothing was encrypted
        assert not (app / ".envplane" / "secrets.enc").exists()


def _run(app: Path, case: Case) -> subprocess.CompletedProcess[str]:

    return subprocess.run([sys.executable, "-m", "envplane", *case.args], cwd=app, capture_output=True,
                          text=True, timeout=120, input=case.stdin or "", env={**os.environ, **case.env})


def test_json_of_nothing_to_do_says_so(app: Path) -> None:
    import json

    need("a Docker engine", docker_engine(), "run scripts/services/docker.sh")
    done = cli("preview", "down", "--pr", "99", "--json", cwd=app)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["nothing_to_do"] is True


def test_a_preview_up_then_its_mistakes(app: Path) -> None:
    """The small app's preview: typos are refused with the services, a second `preview down`
    finds nothing and writes nothing."""
    need("a Docker engine", docker_engine(), "run scripts/services/docker.sh")
    ensure_busybox_image()
    try:
        up = cli("preview", "up", "--pr", "5", "--timeout", "60", cwd=app)
        assert up.returncode == 0, up.stderr
        typo = cli("logs", "test", "wrker", "--pr", "5", cwd=app)
        assert typo.returncode == 2 and "(services: web, worker)" in typo.stderr
        assert "did you mean worker?" in typo.stderr
        assert cli("logs", "test", "worker", "--pr", "5", cwd=app).returncode == 0
        status = cli("status", "test", cwd=app)
        assert status.returncode == 0 and "pr-5" in status.stdout
        first = cli("preview", "down", "--pr", "5", cwd=app)
        assert first.returncode == 0 and "pr-5 is purged" in first.stdout, first.stderr
        after = rows(app)
        again = cli("preview", "down", "--pr", "5", cwd=app)
        assert again.returncode == 0 and "nothing to remove" in again.stdout, again.stderr
        stop = cli("down", "test", "--pr", "5", cwd=app)
        assert stop.returncode == 0 and "is not running: nothing to stop" in stop.stdout, stop.stderr
        assert rows(app) == after  # no audit row, no state row for what did nothing
    finally:
        cli("down", "test", "--pr", "5", "--purge", cwd=app)


README = Path(__file__).resolve().parents[2] / "README.md"


def readme_exit_codes() -> set[int]:
    """The codes of README's exit code table (section `### Exit codes`)."""
    text = README.read_text(encoding="utf-8").split("### Exit codes", 1)[1].split("\n#", 1)[0]
    return {int(line.split("|")[1]) for line in text.splitlines()
            if line.startswith("| ") and line.split("|")[1].strip().isdigit()}


def test_the_readme_table_and_these_cases_name_the_same_codes() -> None:
    """Each code of the table is walked here (130 by the interrupt test below), and no
    command exits with a code the table does not explain."""
    walked = {case.code for case in CASES} | {130}
    assert readme_exit_codes() == walked


def test_ctrl_c_exits_130(app: Path) -> None:
    """A command interrupted while it waits (here for the lock another operation holds)."""
    import signal
    import time

    from envplane.state import locks
    from envplane.state.db import open_store

    need("a Docker engine", docker_engine(), "run scripts/services/docker.sh")
    name = (app / "envplane.yaml").read_text().split()[1]
    store = open_store(app)
    held = locks.acquire(store, name, "staging", "staging", holder="someone else")
    try:
        proc = subprocess.Popen([sys.executable, "-m", "envplane", "up", "staging"], cwd=app,
                                stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True)
        assert proc.stderr is not None
        said = ""
        deadline = time.monotonic() + 120
        while "holds this instance" not in said and time.monotonic() < deadline:
            line = proc.stderr.readline()
            if not line:
                break
            said += line
        assert "holds this instance" in said, said
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=60) == 130
    finally:
        locks.release(held)
        store.close()


def test_a_purge_removes_secrets_set_before_any_up(app: Path, tmp_path: Path) -> None:
    """An instance never deployed but with secrets (set by hand, or left by a `provision`
    whose rendered files are gone) is not `nothing to remove`: the purge drops them."""
    url = os.environ.get("ENVPLANE_TEST_REDIS_URL")
    need("Redis", bool(url), "run scripts/services/redis.sh")
    need("a Docker engine", docker_engine(), "run scripts/services/docker.sh")
    spec = app / "envplane.yaml"
    spec.write_text(spec.read_text() + "resources:\n  redis: {}\n")
    env = {"ENVPLANE_REDIS_URL": str(url), "XDG_CONFIG_HOME": str(tmp_path / "config")}
    stored = _run(app, Case(("secrets", "set", "staging", "API_KEY", "-s", "web"), 0, "",
                            stdin="value\n", env=env))
    assert stored.returncode == 0, stored.stderr
    purge = cli("down", "staging", "--purge", "--yes", cwd=app, env=env)
    assert purge.returncode == 0, purge.stderr
    assert "nothing to remove" not in purge.stdout + purge.stderr
    left = cli("secrets", "list", "staging", "--json", cwd=app, env=env)
    assert left.returncode == 0 and left.stdout.strip() == "[]", left.stdout

"""`envplane users`, `tokens` and `apps` as an admin runs them on the server's host."""

from __future__ import annotations

import base64
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from envplane.server import auth
from envplane.server.home import open_server_store
from envplane.state import audit
from tests.support import cli
from tests.unit.state.stores import fresh_postgres_database

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "finance-report"
AUDIT_KEY = base64.b64encode(b"e" * 32).decode()


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.integration)])
def server_env(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[dict[str, str]]:
    """The environment of a server whose home is in tmp_path; its store SQLite there, or a
    fresh PostgreSQL database named by ENVPLANE_STATE_URL."""
    env = {"ENVPLANE_SERVER_HOME": str(tmp_path / "server"), "ENVPLANE_AUDIT_KEY": AUDIT_KEY,
           "ENVPLANE_USER": "root-admin", "ENVPLANE_STATE_URL": ""}
    if request.param == "sqlite":
        yield env
        return
    with fresh_postgres_database() as url:
        yield {**env, "ENVPLANE_STATE_URL": url}


def authenticate(env: dict[str, str], token: str) -> auth.Principal | None:
    store = open_server_store(env)
    try:
        return auth.authenticate_token(store, token)
    finally:
        store.close()


def test_a_token_is_printed_once_works_until_revoked_and_is_never_listed(server_env: dict[str, str],
                                                                         tmp_path: Path):
    made = cli("tokens", "create", "--name", "ci", "--scope", "deploy:test", "--scope", "read",
               "--expires", "30d", cwd=tmp_path, env=server_env)
    assert made.returncode == 0, made.stderr
    token = made.stdout.strip()
    assert token.startswith("envp_") and made.stdout == token + "\n"  # alone on stdout, for $(...)
    assert "not shown again" in made.stderr and "deploy:test read" in made.stderr
    principal = authenticate(server_env, token)
    assert principal is not None and principal.may("deploy", "test")
    assert not principal.may("deploy", "production")

    listed = cli("tokens", "list", "--json", cwd=tmp_path, env=server_env)
    assert listed.returncode == 0, listed.stderr
    [row] = json.loads(listed.stdout)
    assert (row["name"], row["scopes"], row["state"]) == ("ci", ["deploy:test", "read"], "active")
    assert row["last_used_at"] is not None  # the authentication above
    human = cli("tokens", "list", cwd=tmp_path, env=server_env)
    assert token not in listed.stdout + human.stdout + human.stderr
    assert "ci" in human.stdout and "active" in human.stdout

    revoked = cli("tokens", "revoke", "ci", cwd=tmp_path, env=server_env)
    assert revoked.returncode == 0, revoked.stderr
    assert authenticate(server_env, token) is None
    assert json.loads(cli("tokens", "list", "--json", cwd=tmp_path, env=server_env).stdout)[0]["state"] \
        == "revoked"
    store = open_server_store(server_env)
    try:
        logged = [(e.actor, e.action, e.detail) for e in audit.entries(store)]
    finally:
        store.close()
    assert [(actor, action) for actor, action, _ in logged] == [("root-admin", "token-create"),
                                                               ("root-admin", "token-revoke")]
    assert token not in repr(logged)
    if server_env["ENVPLANE_STATE_URL"] == "":
        stored = (Path(server_env["ENVPLANE_SERVER_HOME"]) / "server.db").read_bytes()
        assert token.encode() not in stored


def test_tokens_create_json_gives_the_token_and_its_listing(server_env: dict[str, str], tmp_path: Path):
    made = cli("tokens", "create", "--name", "forever", "--scope", "read", "--expires", "never", "--json",
               cwd=tmp_path, env=server_env)
    assert made.returncode == 0, made.stderr
    data = json.loads(made.stdout)
    assert data["expires_at"] is None and data["created_by"] == "root-admin"
    assert authenticate(server_env, data["token"]) is not None


@pytest.mark.parametrize(("args", "message"), [
    (["--name", "ci"], "no scope given"),
    (["--name", "ci", "--scope", "write"], "unknown scope 'write'"),
    (["--name", "ci", "--scope", "deploy:[a-z]*"], "is not an env name or pattern"),
    (["--name", "ci", "--scope", "read", "--expires", "soon"], "cannot read duration 'soon'"),
    (["--name", "ci", "--scope", "read", "--expires", "99999999999999999999d"], "a token lasts from"),
    (["--name", "ci", "--scope", "read", "--expires", "0d"], "a token lasts from"),
    (["--name", "$(reboot)", "--scope", "read"], "is not a valid token name"),
    (["--name", "ci", "--scope", "read", "--user", "ghost"], "no user 'ghost'"),
])
def test_bad_token_requests_change_nothing(args: list[str], message: str, tmp_path: Path):
    env = {"ENVPLANE_SERVER_HOME": str(tmp_path / "server"), "ENVPLANE_AUDIT_KEY": AUDIT_KEY,
           "ENVPLANE_STATE_URL": ""}
    done = cli("tokens", "create", *args, cwd=tmp_path, env=env)
    assert done.returncode == (1 if "ghost" in args else 2), done.stderr
    assert message in done.stderr
    assert done.stdout == ""
    assert json.loads(cli("tokens", "list", "--json", cwd=tmp_path, env=env).stdout) == []


def test_a_second_token_of_one_name_is_refused(server_env: dict[str, str], tmp_path: Path):
    assert cli("tokens", "create", "--name", "ci", "--scope", "read", cwd=tmp_path, env=server_env).returncode == 0
    again = cli("tokens", "create", "--name", "ci", "--scope", "admin", cwd=tmp_path, env=server_env)
    assert again.returncode == 2 and "a token named ci exists already" in again.stderr
    assert again.stdout == ""


def test_users_add_takes_the_password_from_stdin_and_keeps_only_its_hash(server_env: dict[str, str],
                                                                          tmp_path: Path):
    added = cli_input(["users", "add", "alice", "--scope", "approve:production"], "correct horse battery\n",
                      tmp_path, server_env)
    assert added.returncode == 0, added.stderr
    assert "added user alice" in added.stderr
    store = open_server_store(server_env)
    try:
        alice = auth.check_password(store, "alice", "correct horse battery")
        assert alice is not None and alice.may("approve", "production") and not alice.may("deploy", "test")
        assert auth.check_password(store, "alice", "correct horse battery\n") is None
    finally:
        store.close()
    listed = cli("users", "list", "--json", cwd=tmp_path, env=server_env)
    assert json.loads(listed.stdout)[0]["scopes"] == ["approve:production"]
    assert "scrypt" not in listed.stdout and "correct horse" not in listed.stdout

    twice = cli_input(["users", "add", "alice"], "another password\n", tmp_path, server_env)
    assert twice.returncode == 2 and "a user named alice exists already" in twice.stderr


@pytest.mark.parametrize(("args", "password", "message"), [
    (["users", "add", "bob"], "short\n", "at least 8 characters"),
    (["users", "add", "bob"], "", "no password on stdin"),
    (["users", "add", "bob,alice"], "long enough\n", "is not a valid user name"),
    (["users", "add", "bob", "--scope", "root"], "long enough\n", "unknown scope 'root'"),
])
def test_bad_user_requests_add_nobody(args: list[str], password: str, message: str, tmp_path: Path):
    env = {"ENVPLANE_SERVER_HOME": str(tmp_path / "server"), "ENVPLANE_AUDIT_KEY": AUDIT_KEY,
           "ENVPLANE_STATE_URL": ""}
    done = cli_input(args, password, tmp_path, env)
    assert done.returncode == 2, done.stderr
    assert message in done.stderr
    assert json.loads(cli("users", "list", "--json", cwd=tmp_path, env=env).stdout) == []


def test_apps_add_registers_an_app_by_its_spec_once(server_env: dict[str, str], tmp_path: Path):
    app = tmp_path / "finance-report"
    shutil.copytree(EXAMPLE, app)
    added = cli("apps", "add", str(app), cwd=tmp_path, env=server_env)
    assert added.returncode == 0, added.stderr
    assert "registered app finance-report" in added.stderr
    again = cli("apps", "add", str(app / "envplane.yaml"), cwd=tmp_path, env=server_env)
    assert again.returncode == 0 and "registered already" in again.stdout
    listed = json.loads(cli("apps", "list", "--json", cwd=tmp_path, env=server_env).stdout)
    assert listed == [{"name": "finance-report", "spec_path": str(app.resolve() / "envplane.yaml"), "valid": True}]

    other = tmp_path / "copy"
    shutil.copytree(EXAMPLE, other)
    clash = cli("apps", "add", str(other), cwd=tmp_path, env=server_env)
    assert clash.returncode == 2 and "an app named finance-report is registered already" in clash.stderr
    missing = cli("apps", "add", str(tmp_path / "nowhere"), cwd=tmp_path, env=server_env)
    assert missing.returncode == 2 and "no spec at" in missing.stderr


def test_a_broken_spec_is_refused_with_its_own_error(tmp_path: Path):
    env = {"ENVPLANE_SERVER_HOME": str(tmp_path / "server"), "ENVPLANE_AUDIT_KEY": AUDIT_KEY,
           "ENVPLANE_STATE_URL": ""}
    (tmp_path / "envplane.yaml").write_text("app: Not_A_Name\n", encoding="utf-8")
    done = cli("apps", "add", str(tmp_path), cwd=tmp_path, env=env)
    assert done.returncode == 2
    assert "envplane.yaml" in done.stderr
    assert json.loads(cli("apps", "list", "--json", cwd=tmp_path, env=env).stdout) == []


def cli_input(args: list[str], stdin: str, cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "envplane", *args], cwd=cwd, input=stdin, capture_output=True,
                          text=True, timeout=120, env={**os.environ, **env})


def test_approver_line_prints_the_servers_key_restricted_to_its_namespace(tmp_path: Path):
    env = {"ENVPLANE_SERVER_HOME": str(tmp_path / "server"), "ENVPLANE_AUDIT_KEY": AUDIT_KEY,
           "ENVPLANE_STATE_URL": ""}
    first = cli("users", "approver-line", "alice", cwd=tmp_path, env=env)
    assert first.returncode == 0, first.stderr
    words = first.stdout.split()
    assert words[:3] == ["alice", 'namespaces="envplane-server"', "ssh-ed25519"] and words[-1] == "envplane-server"
    again = cli("users", "approver-line", "bob", cwd=tmp_path, env=env)
    assert again.stdout.split()[2:] == words[2:]  # one key for the server, made once
    assert (tmp_path / "server" / "approval_ed25519").stat().st_mode & 0o077 == 0
    bad = cli("users", "approver-line", "bob alice", cwd=tmp_path, env=env)
    assert bad.returncode == 2 and "is not a valid user name" in bad.stderr


def at_a_terminal(args: list[str], answers: dict[bytes, str], env: dict[str, str], cwd: Path) -> tuple[str, int]:
    """Run envplane in a pseudo-terminal, answering each prompt when it appears."""
    import pty
    import select
    import signal

    pid, fd = pty.fork()
    if pid == 0:  # the child: envplane at a terminal
        os.chdir(cwd)
        os.execve(sys.executable, [sys.executable, "-m", "envplane", *args], {**os.environ, **env})
    seen, pending = b"", dict(answers)
    while True:
        ready, _, _ = select.select([fd], [], [], 120)
        if not ready:  # a prompt that never came: stop the child rather than hang the suite
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            pytest.fail(f"envplane {' '.join(args)} stopped answering at a terminal: {seen!r}")
        try:
            chunk = os.read(fd, 4096)
        except OSError:  # the child closed the terminal
            break
        if not chunk:
            break
        seen += chunk
        for prompt in list(pending):
            if seen.endswith(prompt):
                os.write(fd, pending.pop(prompt).encode() + b"\n")
    _, status = os.waitpid(pid, 0)
    os.close(fd)
    return seen.decode(errors="replace"), os.waitstatus_to_exitcode(status)


def test_at_a_terminal_the_password_is_asked_twice_hidden(tmp_path: Path):
    env = {"ENVPLANE_SERVER_HOME": str(tmp_path / "server"), "ENVPLANE_AUDIT_KEY": AUDIT_KEY,
           "ENVPLANE_STATE_URL": ""}
    shown, code = at_a_terminal(["users", "add", "carol"], {b"password for carol: ": "first password",
                                                           b"again: ": "other password"}, env, tmp_path)
    assert code == 2 and "the two passwords differ: nothing was changed" in shown
    assert "first password" not in shown and "other password" not in shown  # not echoed
    shown, code = at_a_terminal(["users", "add", "carol"], {b"password for carol: ": "correct horse",
                                                           b"again: ": "correct horse"}, env, tmp_path)
    assert code == 0 and "added user carol" in shown and "correct horse" not in shown
    store = open_server_store(env)
    try:
        assert auth.check_password(store, "carol", "correct horse") is not None
    finally:
        store.close()


def git(*args: str, cwd: Path) -> str:
    done = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, timeout=60, check=True,
                          env={**os.environ, "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@example.org",
                               "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@example.org"})
    return done.stdout.strip()


def published_example(tmp_path: Path, subfolder: str = "") -> str:
    """The example app committed in a repository (its spec in `subfolder`), pushed to a bare
    repository; its file:// URL, as a git host would serve it."""
    work = tmp_path / "work"
    shutil.copytree(EXAMPLE, work / subfolder if subfolder else work,
                    ignore=shutil.ignore_patterns(".envplane", "node_modules"))
    git("init", "-q", "-b", "main", cwd=work)
    git("add", "-A", cwd=work)
    git("commit", "-q", "-m", "app", cwd=work)
    bare = tmp_path / "published.git"
    git("clone", "-q", "--bare", str(work), str(bare), cwd=tmp_path)
    return bare.as_uri()


def test_apps_add_of_a_git_url_clones_it_into_the_servers_home_and_serves_that(server_env: dict[str, str],
                                                                              tmp_path: Path):
    url = published_example(tmp_path, "deploy")
    added = cli("apps", "add", url, "--spec", "deploy", cwd=tmp_path, env=server_env)
    assert added.returncode == 0, added.stderr
    clone = Path(server_env["ENVPLANE_SERVER_HOME"]) / "apps" / "finance-report"
    assert f"cloned {url} into {clone}" in added.stderr and "registered app finance-report" in added.stderr
    listed = json.loads(cli("apps", "list", "--json", cwd=tmp_path, env=server_env).stdout)
    assert listed == [{"name": "finance-report", "spec_path": str(clone / "deploy" / "envplane.yaml"),
                       "valid": True}]
    # previews and releases fetch their commits from the clone's origin: the URL given
    assert git("remote", "get-url", "origin", cwd=clone) == url
    assert git("status", "--porcelain", cwd=clone) == ""  # only the server's .envplane/, which git ignores
    plan = cli("plan", "staging", cwd=clone / "deploy", env=server_env)
    assert plan.returncode == 0, plan.stderr

    again = cli("apps", "add", url, "--spec", "deploy", cwd=tmp_path, env=server_env)
    assert again.returncode == 2, again.stderr
    assert f"{clone} exists already" in again.stderr and f"envplane apps add {clone / 'deploy'}" in again.stderr


@pytest.mark.parametrize(("url", "message"), [
    ("https://alice:hunter2@git.example.org/a/app.git", "credentials in the URL"),
    ("https://ghp_token@git.example.org/a/app.git", "credentials in the URL"),
    ("ssh://git:hunter2@git.example.org/a/app.git", "credentials in the URL"),
    ("ext::sh -c touch% /tmp/pwned", "not a git URL envplane clones"),
    ("-uhttps://example.org/app.git", "not a git URL envplane clones"),
    ("ftp://example.org/app.git", "not a git URL envplane clones"),
])
def test_apps_add_refuses_a_url_it_would_not_clone_safely(url: str, message: str, tmp_path: Path):
    env = {"ENVPLANE_SERVER_HOME": str(tmp_path / "server"), "ENVPLANE_AUDIT_KEY": AUDIT_KEY,
           "ENVPLANE_STATE_URL": ""}
    done = cli("apps", "add", "--", url, cwd=tmp_path, env=env)  # `--`: a URL like an option reaches envplane
    assert done.returncode == 2, done.stderr
    assert message in done.stderr
    assert "hunter2" not in done.stderr and "ghp_token" not in done.stderr
    assert not (tmp_path / "server" / "apps").exists() or not any((tmp_path / "server" / "apps").iterdir())
    assert not Path("/tmp/pwned").exists()


def test_apps_add_of_a_url_that_fails_leaves_nothing_behind(tmp_path: Path):
    env = {"ENVPLANE_SERVER_HOME": str(tmp_path / "server"), "ENVPLANE_AUDIT_KEY": AUDIT_KEY,
           "ENVPLANE_STATE_URL": ""}
    apps = tmp_path / "server" / "apps"
    missing = cli("apps", "add", (tmp_path / "nowhere.git").as_uri(), cwd=tmp_path, env=env)
    assert missing.returncode == 1, missing.stderr
    assert "cannot clone" in missing.stderr
    url = published_example(tmp_path)
    no_spec = cli("apps", "add", url, "--spec", "deploy", cwd=tmp_path, env=env)
    assert no_spec.returncode == 2 and "no spec at" in no_spec.stderr, no_spec.stderr
    escape = cli("apps", "add", url, "--spec", "../..", cwd=tmp_path, env=env)
    assert escape.returncode == 2 and "inside the repository" in escape.stderr, escape.stderr
    assert not apps.exists() or not any(apps.iterdir())
    assert json.loads(cli("apps", "list", "--json", cwd=tmp_path, env=env).stdout) == []

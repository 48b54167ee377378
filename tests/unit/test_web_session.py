"""#14 dashboard: login sessions are signed by the server, end when it says so, and every form
needs its own CSRF token."""

from __future__ import annotations

from dataclasses import dataclass

from envplane.server.web_session import FAILURE_WINDOW, LOGIN_TTL, MAX_FAILURES, TTL, Sessions


@dataclass(frozen=True)
class Person:
    name: str

    def may(self, action: str, env: str | None = None) -> bool:
        return True


class Clock:
    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now


def test_a_session_is_found_by_its_signed_cookie_only() -> None:
    sessions = Sessions()
    session, cookie = sessions.start(Person("alice"))
    assert sessions.find(cookie) == session
    sid, mac = cookie.split(".")
    assert session.id == sid and session.id not in mac
    # The id alone, another signature, another server's key: no session.
    assert sessions.find(sid) is None
    assert sessions.find(f"{sid}.{'0' * len(mac)}") is None
    assert Sessions().find(cookie) is None
    assert sessions.find(None) is None and sessions.find("") is None and sessions.find("a.b.c") is None


def test_a_forged_id_with_a_guessed_signature_names_no_session() -> None:
    sessions = Sessions()
    sessions.start(Person("alice"))
    _, cookie = Sessions(key=b"k" * 32).start(Person("mallory"))
    assert sessions.find(cookie) is None  # signed with a key this server does not hold


def test_logout_ends_the_session_at_once_and_a_session_expires() -> None:
    clock = Clock()
    sessions = Sessions(clock=clock)
    _, cookie = sessions.start(Person("alice"))
    sessions.end(cookie)
    assert sessions.find(cookie) is None
    _, cookie = sessions.start(Person("alice"))
    clock.now += TTL - 1
    assert sessions.find(cookie) is not None
    clock.now += 2
    assert sessions.find(cookie) is None


def test_the_csrf_token_is_the_sessions_own() -> None:
    sessions = Sessions()
    alice, _ = sessions.start(Person("alice"))
    bob, _ = sessions.start(Person("bob"))
    assert sessions.csrf_ok(alice, alice.csrf)
    assert not sessions.csrf_ok(alice, bob.csrf)
    assert not sessions.csrf_ok(alice, None) and not sessions.csrf_ok(alice, "")


def test_a_login_form_token_goes_with_its_cookie_and_expires() -> None:
    clock = Clock()
    sessions = Sessions(clock=clock)
    cookie, token = sessions.login_form()
    other_cookie, other_token = sessions.login_form()
    assert sessions.login_token_ok(cookie, token)
    assert not sessions.login_token_ok(cookie, other_token)
    assert not sessions.login_token_ok(other_cookie, token)
    assert not sessions.login_token_ok(None, token) and not sessions.login_token_ok(cookie, None)
    assert not Sessions(clock=clock).login_token_ok(cookie, token)  # another key
    clock.now += LOGIN_TTL + 1
    assert not sessions.login_token_ok(cookie, token)


def test_a_client_that_failed_a_name_too_often_waits_whatever_the_password() -> None:
    clock = Clock()
    sessions = Sessions(clock=clock)
    guesser, owner = "203.0.113.7", "198.51.100.2"
    for _ in range(MAX_FAILURES - 1):
        sessions.failed(guesser, "alice")
    assert sessions.refused(guesser, "alice") == 0
    sessions.failed(guesser, "alice")
    assert 0 < sessions.refused(guesser, "alice") <= FAILURE_WINDOW
    assert sessions.refused(guesser, "bob") == 0  # another name is not held up
    assert sessions.refused(owner, "alice") == 0  # nor the name from another client: no lockout
    clock.now += FAILURE_WINDOW + 1
    assert sessions.refused(guesser, "alice") == 0
    sessions.failed(guesser, "alice")
    sessions.succeeded(guesser, "alice")
    assert sessions.refused(guesser, "alice") == 0
    assert not sessions._failures  # nothing kept of a client that stopped failing


def test_the_package_ships_every_page_and_script_of_the_dashboard() -> None:
    """pyproject's package-data globs take every template and static file (htmx included):
    an installed envplane serves the same dashboard as this checkout."""
    import tomllib
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    globs = tomllib.loads((root / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]["envplane"]
    package = root / "src" / "envplane"
    shipped = {p for g in globs for p in package.glob(g) if p.is_file()}
    files = {p for folder in ("server/templates", "server/static") for p in (package / folder).rglob("*")
             if p.is_file() and "__pycache__" not in p.parts}
    assert files and files <= shipped, sorted(str(p.relative_to(package)) for p in files - shipped)
    assert (package / "server/static/vendor/htmx.min.js").stat().st_size > 40_000

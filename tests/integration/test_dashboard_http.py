"""#14 dashboard over plain HTTP (httpx against the real server): no page without a session,
no change without the form's CSRF token, cookies a script cannot read or another site send,
and no secret value in any page."""

from __future__ import annotations

import re
import subprocess
import time
from collections.abc import Iterator
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import urljoin, urlsplit

import pytest

from envplane.server import web_session
from tests.dashboard_kit import PASSWORDS, Served, csrf_of, envplane, serve
from tests.support import cli


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    with serve(tmp_path_factory.mktemp("dashboard-http")) as found:
        yield found


PAGES = ("/", "/audit", "/jobs")


def test_without_a_session_every_page_goes_to_the_login_page(served: Served) -> None:
    with served.client() as client:
        for path in (*PAGES, f"/apps/{served.app}/instances/staging/staging"):
            answer = client.get(path)
            assert answer.status_code == 303, path
            assert answer.headers["location"].startswith("/login?next=")
        # a cookie the server did not sign is no session
        client.cookies.set(web_session.COOKIE, "made-up.0123")
        assert client.get("/").status_code == 303
        # the login page and the package's scripts need none
        assert client.get("/login").status_code == 200
        script = client.get("/static/htmx.min.js")
        assert script.status_code == 200 and script.headers["content-type"].startswith("text/javascript")
        assert client.get("/static/..%2Fdashboard.py").status_code == 404


def test_a_login_without_the_forms_token_is_refused(served: Served) -> None:
    with served.client() as client:
        client.get("/login")  # its cookie, but not its token
        answer = client.post("/login", data={"user": "alice", "password": PASSWORDS["alice"], "csrf": "x"})
        assert answer.status_code == 403
        assert web_session.COOKIE not in answer.cookies
        assert client.get("/").status_code == 303
    with served.client() as client:  # a token without its cookie: a form posted from elsewhere
        token = csrf_of(client.get("/login").text)
        client.cookies.clear()
        answer = client.post("/login", data={"user": "alice", "password": PASSWORDS["alice"], "csrf": token})
        assert answer.status_code == 403 and web_session.COOKIE not in answer.cookies


def test_a_wrong_password_gets_no_session(served: Served) -> None:
    with served.client() as client:
        token = csrf_of(client.get("/login").text)
        answer = client.post("/login", data={"user": "alice", "password": "wrong", "csrf": token})
        assert answer.status_code == 401 and "Wrong user name or password" in answer.text
        assert web_session.COOKIE not in answer.cookies
        assert PASSWORDS["alice"] not in answer.text


def test_the_session_cookie_is_httponly_and_samesite_strict(served: Served) -> None:
    with served.client() as client:
        token = csrf_of(client.get("/login").text)
        answer = client.post("/login", data={"user": "alice", "password": PASSWORDS["alice"], "csrf": token,
                                             "next": "//evil.example/steal"})
        assert answer.status_code == 303
        assert answer.headers["location"] == "/"  # never to another site
        cookie = next(h for h in answer.headers.get_list("set-cookie") if h.startswith(web_session.COOKIE))
        assert "HttpOnly" in cookie and "SameSite=strict" in cookie and "Path=/" in cookie
        page = client.get("/")
        assert page.status_code == 200
        assert "frame-ancestors 'none'" in page.headers["content-security-policy"]
        assert "unsafe-inline" not in page.headers["content-security-policy"]


def test_logout_needs_the_sessions_own_token_and_ends_it(served: Served) -> None:
    with served.client() as alice, served.client() as bob:
        served.login(alice, "alice")
        served.login(bob, "bob")
        bobs_token = csrf_of(bob.get("/").text)
        # no token, another session's token: refused, and alice is still signed in
        assert alice.post("/logout", data={}).status_code == 403
        assert alice.post("/logout", data={"csrf": bobs_token}).status_code == 403
        assert alice.get("/").status_code == 200
        cookie = alice.cookies[web_session.COOKIE]
        answer = alice.post("/logout", data={"csrf": csrf_of(alice.get("/").text)})
        assert answer.status_code == 303 and answer.headers["location"] == "/login"
        # the old cookie, kept by whoever copied it, opens nothing any more
        with served.client() as copied:
            copied.cookies.set(web_session.COOKIE, cookie)
            assert copied.get("/").status_code == 303
        assert bob.get("/").status_code == 200  # bob's session is his own


class Structure(HTMLParser):
    """What a screen reader needs of a page: its language, one h1, tables named, inputs labelled."""

    def __init__(self) -> None:
        super().__init__()
        self.lang, self.h1, self.labels, self.inputs, self.tables = False, 0, set(), [], []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        found = dict(attrs)
        if tag == "html":
            self.lang = bool(found.get("lang"))
        elif tag == "h1":
            self.h1 += 1
        elif tag == "label":
            self.labels.add(found.get("for"))
        elif tag == "input" and found.get("type") != "hidden":
            self.inputs.append(found.get("id"))
        elif tag == "table":
            self.tables.append(bool(found.get("aria-labelledby")))
        elif tag == "caption" and self.tables:
            self.tables[-1] = True


def structure_problems(html: str) -> list[str]:
    page = Structure()
    page.feed(html)
    return ([] if page.lang else ["no lang"]) + ([] if page.h1 == 1 else [f"{page.h1} h1"]) + [
        f"input {i} unlabelled" for i in page.inputs if i is None or i not in page.labels] + [
        "a table without a name" for named in page.tables if not named]


def test_no_secret_value_appears_in_any_page(served: Served) -> None:
    """...and every page has the structure a screen reader needs."""
    # The instance does hold the secret, and says it in its log: a page that showed the
    # container's log or environment unmasked would show it.
    container = subprocess.run(["docker", "ps", "-q", "--filter", f"label=envplane.app={served.app}"],
                               capture_output=True, text=True, check=True).stdout.split()[0]
    logs = subprocess.run(["docker", "logs", container], capture_output=True, text=True)
    assert served.secret in logs.stdout + logs.stderr
    with served.client() as client:
        served.login(client, "alice")
        seen, queue = set(), list(PAGES)
        while queue:
            path = queue.pop()
            if path in seen:
                continue
            seen.add(path)
            answer = client.get(path)
            assert answer.status_code in (200, 404), (path, answer.status_code)
            assert served.secret not in answer.text, path
            if answer.headers["content-type"].startswith("text/html"):
                assert not structure_problems(answer.text), (path, structure_problems(answer.text))
            for link in re.findall(r'href="([^"#]+)"', answer.text):
                where = urlsplit(urljoin(served.url + path, link.replace("&amp;", "&")))
                if where.netloc == urlsplit(served.url).netloc and not where.path.startswith("/static/"):
                    queue.append(where.path + (f"?{where.query}" if where.query else ""))
        assert f"/apps/{served.app}/instances/staging/staging" in seen  # the crawl reached the instance


def test_the_dashboard_module_imports_no_server_package_at_cli_start(tmp_path: Path) -> None:
    """The CLI starts without FastAPI (#11): nothing of the dashboard is imported by it."""
    import sys

    done = subprocess.run([sys.executable, "-c", "import sys, envplane.cli.main; "
                           "print([m for m in ('fastapi', 'jinja2', 'envplane.server.dashboard') if m in sys.modules])"],
                          capture_output=True, text=True)
    assert done.stdout.strip() == "[]", done.stderr


def test_scopes_are_read_at_every_request(served: Served) -> None:
    from envplane.server import auth

    logs = f"/apps/{served.app}/instances/staging/staging/logs/web"
    with served.client() as client:
        served.login(client, "carol")  # read only
        assert client.get("/").status_code == 200
        refused = client.get(logs)
        assert refused.status_code == 403 and "carol may not read:logs" in refused.text
        assert served.secret not in refused.text
        # a user removed while logged in has no session from the next request on
        auth.remove_user(served.store, "carol")
        try:
            assert client.get("/").status_code == 303
        finally:
            auth.add_user(served.store, "carol", PASSWORDS["carol"], ("read",))
        assert client.get("/").status_code == 303  # the same name again is not the old session


def test_the_audit_log_shows_its_rows_and_that_it_verifies(served: Served) -> None:
    with served.client() as client:
        served.login(client, "carol")
        page = client.get("/audit").text
        section = page[page.index(f">{served.app}</h2>"):]
        assert "✓ intact:" in section  # verified with the app's audit key
        assert re.search(r"<td>ops</td><td>release</td>\s*<td>staging/staging</td><td>ok</td>", section)


def test_releases_and_previews_say_what_there_is(served: Served) -> None:
    with served.client() as client:
        served.login(client, "carol")
        releases = client.get(f"/apps/{served.app}/releases").text
        assert re.search(r'v1\.0\.1</a></th>.*?<td>ops</td>\s*<td>staging/staging</td>', releases, re.S)
        release = client.get(f"/apps/{served.app}/releases/v1.0.1").text
        assert "No gate was evaluated for v1.0.1 yet" in release
        assert "Approve v1.0.1" not in release and "Promote v1.0.1" not in release  # carol only reads
        assert "no preview" in client.get(f"/apps/{served.app}/previews").text
        missing = client.get(f"/apps/{served.app}/releases/v9.9.9")
        assert missing.status_code == 404 and f"no release v9.9.9 of {served.app}" in missing.text
        unknown = client.get("/apps/no-such-app/releases")
        assert unknown.status_code == 404 and "no-such-app" in unknown.text
        assert client.get(f"/apps/{served.app}/instances/nowhere/x").status_code == 400


def test_the_log_stream_keeps_up_with_a_burst(served: Served) -> None:
    """50 000 lines at once (#7719: logs that freeze in the browser): the stream reaches the
    last one, in batches, saying how many it skipped to keep up; every line it sends is escaped."""
    stream = f"/apps/{served.app}/instances/staging/staging/logs/web/stream"
    container = subprocess.run(["docker", "ps", "-q", "--filter", f"label=envplane.app={served.app}"],
                               capture_output=True, text=True, check=True).stdout.split()[0]
    with served.client() as client:
        served.login(client, "bob")
        with client.stream("GET", stream, timeout=120) as answer:
            assert answer.status_code == 200 and answer.headers["content-type"].startswith("text/event-stream")
            lines = answer.iter_lines()
            assert 'class="line"' in next(line for line in lines if line.startswith("data:"))
            subprocess.run(["docker", "exec", container, "sh", "-c",
                            "seq 1 50000 | sed 's|.*|<b>burst &</b>|' > /proc/1/fd/1"], check=True)
            events, received, skipped = 0, 0, 0
            for line in lines:
                if line.startswith("event: line"):
                    events += 1
                if not line.startswith("data:"):
                    continue
                received += line.count('<span class="line">')
                if found := re.search(r"… (\d+) lines skipped", line):
                    skipped += int(found.group(1))
                assert "<b>" not in line  # the container's words are text, never markup
                if "&lt;b&gt;burst 50000&lt;/b&gt;" in line:
                    break
    assert received + skipped >= 50000 and events < 50000 / 10


def test_an_approval_needs_the_scope_and_the_forms_token(served: Served) -> None:
    approve = f"/apps/{served.app}/releases/v1.0.1/approve"
    with served.client() as carol, served.client() as bob:
        served.login(carol, "carol")
        served.login(bob, "bob")
        carols = csrf_of(carol.get("/").text)
        refused = carol.post(approve, data={"env": "production", "csrf": carols})
        assert refused.status_code == 403 and "carol may not approve on production" in refused.text
        assert bob.post(approve, data={"env": "production"}).status_code == 403  # no token
        assert bob.post(approve, data={"env": "production", "csrf": carols}).status_code == 403  # not his
        assert bob.post(approve, data={"env": "staging", "csrf": csrf_of(bob.get("/").text)}).status_code == 403
    with served.client() as alice:  # may do anything, but not with a value that names no env
        served.login(alice, "alice")
        token = csrf_of(alice.get("/").text)
        for env in ("", "../production", "production\n"):
            refused = alice.post(approve, data={"env": env, "csrf": token})
            assert refused.status_code in (400, 404) and "<h1>" in refused.text, (env, refused.text)
        assert alice.post(f"/apps/{served.app}/releases/v1.0.1/promote",
                          data={"to": "Production!", "csrf": token}).status_code == 400
        page = alice.get(f"/apps/{served.app}/releases/v1.0.1")
        assert page.status_code == 200 and "none yet: production takes it only" in page.text  # none recorded


def test_nobody_approves_their_own_promotion(served: Served) -> None:
    release = f"/apps/{served.app}/releases/v1.0.1"
    with served.client() as alice:
        served.login(alice, "alice")
        token = csrf_of(alice.get("/").text)
        assert alice.post(f"{release}/approve", data={"env": "production", "csrf": token}).status_code == 303
        assert re.search(r"<th scope=\"row\">alice</th>.*?✓ yes", alice.get(release).text, re.S)
        assert alice.post(f"{release}/promote", data={"to": "production"}).status_code == 403  # no token
        started = alice.post(f"{release}/promote", data={"to": "production", "csrf": token})
        assert started.status_code == 303 and re.fullmatch(r"/jobs/[0-9a-f]{32}", started.headers["location"])
        job = started.headers["location"]
        deadline = time.monotonic() + 180
        while "<span class=\"line ended\">" not in (page := alice.get(job).text):
            assert time.monotonic() < deadline, page
            time.sleep(0.5)
        assert "failed: v1.0.1 was not promoted to production: gates failed: approval" in page
        gates = alice.get(release).text
        assert re.search(r"approval</th><td class=\"bad\">✗ failed</td>\s*<td>only alice approved", gates)
    production = subprocess.run(["docker", "ps", "-q", "--filter", f"label=envplane.app={served.app}",
                                 "--filter", "label=envplane.env=production"], capture_output=True, text=True)
    assert production.stdout.strip() == ""  # nothing was deployed


def test_the_scheduled_jobs_and_an_alert_on_every_page(served: Served) -> None:
    from datetime import UTC, datetime, timedelta

    from envplane.state import scheduler_runs

    with served.client() as client:
        served.login(client, "carol")
        jobs = client.get("/jobs").text
        row = re.search(rf'<tr data-job="preview-gc" data-app="{served.app}">(.*?)</tr>', jobs, re.S)
        assert row and "<td>1h</td>" in row.group(1)  # every hour, by default
        backup = re.search(rf'<tr data-job="backup" data-app="{served.app}">(.*?)</tr>', jobs, re.S)
        assert backup and ">off</td>" in backup.group(1)
        assert 'role="alert"' not in client.get("/").text
        # the scheduler records a failed run (as Scheduler.run does): every page says so
        now = datetime.now(UTC)
        run = scheduler_runs.start(served.store, "preview-gc", served.app, now, now + timedelta(hours=1), "test")
        scheduler_runs.finish(served.store, run, "failed", "the engine did not answer", now)
        banner = re.search(r'<div class="banner alert" role="alert">(.*?)</div>', client.get("/").text, re.S)
        assert banner and f"preview-gc of {served.app} failed" in banner.group(1)
        assert "the engine did not answer" in banner.group(1)
        row = re.search(rf'<tr data-job="preview-gc" data-app="{served.app}">(.*?)</tr>',
                        client.get("/jobs").text, re.S)
        assert row and ">failed</td>" in row.group(1) and "the engine did not answer" in row.group(1)


def test_a_preview_with_its_pr_who_deployed_it_and_its_ttl(served: Served) -> None:
    from envplane.state import instances
    from envplane.state.db import open_store

    envplane("secrets", "set", "test", "API_KEY", "--service", "web", "--pr", "7", cwd=served.folder, env=served.env,
             input=served.secret)
    done = cli("up", "test", "--pr", "7", cwd=served.folder, env={**served.env, "ENVPLANE_USER": "dave"})
    assert done.returncode == 0, done.stdout + done.stderr
    try:
        with served.client() as client:
            served.login(client, "carol")
            row = re.search(r"<tr><th scope=\"row\"><a href=\"[^\"]*/instances/test/pr-7\">#7</a></th>(.*?)</tr>",
                            client.get(f"/apps/{served.app}/previews").text, re.S)
            assert row and "<td>dave</td>" in row.group(1) and "<td>open</td>" in row.group(1)
            # its PR closed (the webhook records it): gc collects it 7 days later
            store = open_store(served.folder)
            try:
                instances.mark_closed(store, served.app, "test", "pr-7")
            finally:
                store.close()
            row = re.search(r"#7</a></th>(.*?)</tr>", client.get(f"/apps/{served.app}/previews").text, re.S)
            assert row and re.search(r"<td>(6 d|7 d)</td></tr>$", row.group(1).strip() + "</tr>"), row.group(1)
    finally:
        cli("down", "test", "--pr", "7", "--purge", cwd=served.folder, env=served.env)


def test_a_log_stream_ends_with_its_session(served: Served) -> None:
    stream = f"/apps/{served.app}/instances/staging/staging/logs/web/stream"
    with served.client() as bob:
        served.login(bob, "bob")
        token = csrf_of(bob.get("/").text)
        with served.client() as other_tab:  # the same session, as another tab of bob's browser
            other_tab.cookies.set(web_session.COOKIE, bob.cookies[web_session.COOKIE])
            with bob.stream("GET", stream, timeout=60) as answer:
                lines = answer.iter_lines()
                assert 'class="line"' in next(line for line in lines if line.startswith("data:"))
                assert other_tab.post("/logout", data={"csrf": token}).status_code == 303
                ended = next(line for line in lines if line.startswith("event: end"))
                assert ended and "the session ended" in next(lines)


def test_an_api_log_stream_ends_when_its_token_is_revoked(served: Served) -> None:
    """`tokens revoke` refuses a token from the next request on; a log followed for hours is
    one request, so it too must stop (within the recheck interval), not stream on."""
    token = envplane("tokens", "create", "--name", "watcher", "--scope", "read:logs", cwd=served.folder,
                     env=served.env).strip()
    stream = f"/api/v1/apps/{served.app}/envs/staging/logs/web"
    with served.client() as client, client.stream("GET", stream, headers={"Authorization": f"Bearer {token}"},
                                                  timeout=60) as answer:
        assert answer.status_code == 200
        lines = answer.iter_lines()
        assert next(line for line in lines if line.startswith("event: log"))
        envplane("tokens", "revoke", "watcher", cwd=served.folder, env=served.env)
        revoked = time.monotonic()
        for line in lines:  # the app ticks twice a second: a stream that goes on is seen going on
            assert time.monotonic() - revoked < 30, "the log still streams 30 s after its token was revoked"
            if line.startswith("event: end"):
                break
        assert "no longer" in next(lines)


def test_the_api_takes_the_session_only_with_its_csrf_token_for_a_change(served: Served) -> None:
    approve = f"/api/v1/apps/{served.app}/releases/v1.0.1/approve"
    with served.client() as bob:
        served.login(bob, "bob")
        token = csrf_of(bob.get("/").text)
        assert bob.get(f"/api/v1/apps/{served.app}/approvals").status_code == 200  # a read: the cookie will do
        # a change with the cookie alone (what a form or script of another site could send): refused
        assert bob.post(approve, json={"to": "production"}).status_code == 401
        assert bob.post(approve, json={"to": "production"}, headers={"X-CSRF-Token": "guess"}).status_code == 401
        done = bob.post(approve, json={"to": "production"}, headers={"X-CSRF-Token": token})
        assert done.status_code == 200 and done.json()["approved_by"] == ["bob"]

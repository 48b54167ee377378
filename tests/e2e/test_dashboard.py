"""#14 dashboard in a browser: Playwright drives Debian's Chromium (never `playwright
install`: it cannot download here) against a real server with a real running instance.
Each test saves screenshots under its tmp dir (the test's artifacts)."""

from __future__ import annotations

import os
import re
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.dashboard_kit import PASSWORDS, Served, serve
from tests.support import need

CHROMIUM = os.environ.get("ENVPLANE_TEST_CHROMIUM", "/usr/bin/chromium")


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    with serve(tmp_path_factory.mktemp("dashboard")) as found:
        yield found


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    need("Chromium", Path(CHROMIUM).exists(), "apt-get install chromium")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        launched = p.chromium.launch(executable_path=CHROMIUM)
        yield launched
        launched.close()


def log_in(page: Any, served: Served, user: str) -> None:
    page.goto(served.url + "/")
    assert "/login" in page.url  # no session: the login page
    page.get_by_label("User name").fill(user)
    page.get_by_label("Password").fill(PASSWORDS[user])
    page.get_by_role("button", name="Log in").click()
    page.wait_for_url(served.url + "/")


def test_log_in_and_see_the_ladder(served: Served, browser: Any, tmp_path: Path) -> None:
    page = browser.new_page()
    log_in(page, served, "alice")
    page.screenshot(path=str(tmp_path / "ladder.png"), full_page=True)
    ladder = page.get_by_role("table", name=f"The ladder of {served.app}")
    row = ladder.locator("tr[data-env=staging]")
    assert row.get_by_role("rowheader").inner_text() == "staging"
    assert "healthy" in row.inner_text()
    assert row.get_by_role("link", name="staging").get_attribute("href") == f"/apps/{served.app}/instances/staging/staging"
    # staging's public URL answers where the ladder says
    url = row.locator("a[rel~=noopener]").first.inner_text()
    assert url.startswith("http://127.0.0.1:")
    # the envs where nothing runs are listed as such
    assert "nothing runs" in ladder.locator("tr", has_text="production").inner_text()
    page.close()


def last_tick(text: str) -> int:
    ticks = re.findall(r"tick (\d+)", text)
    return int(ticks[-1]) if ticks else 0


def test_open_an_instance_and_watch_its_log_stream(served: Served, browser: Any, tmp_path: Path) -> None:
    from playwright.sync_api import expect

    page = browser.new_page()
    log_in(page, served, "alice")
    page.get_by_role("table", name=f"The ladder of {served.app}").get_by_role("link", name="staging").click()
    page.wait_for_url(f"{served.url}/apps/{served.app}/instances/staging/staging")
    expect(page.get_by_role("heading", level=1)).to_have_text(f"{served.app} · staging")
    services = page.get_by_role("table").first
    expect(services.get_by_role("rowheader", name="web")).to_be_visible()
    log = page.get_by_role("log", name="live log of web")
    expect(log).to_contain_text("tick", timeout=20_000)
    seen = last_tick(log.inner_text())
    # the stream goes on: later ticks arrive without a reload
    page.wait_for_function("([el, seen]) => { const t = [...el.innerText.matchAll(/tick (\\d+)/g)]; "
                           "return t.length && Number(t[t.length - 1][1]) > seen + 2; }",
                           arg=[log.element_handle(), seen], timeout=20_000)
    page.screenshot(path=str(tmp_path / "instance.png"), full_page=True)
    text = log.inner_text()
    assert "starting with key ***" in text and served.secret not in text  # the app said its secret
    # deployments with their steps' timings
    steps = page.get_by_role("table", name=re.compile(r"Steps of deployment #\d+"))
    expect(steps.get_by_role("rowheader", name="health")).to_be_visible()
    page.close()


def test_the_log_in_the_page_keeps_up_with_a_burst(served: Served, browser: Any, tmp_path: Path) -> None:
    """20 000 lines at once: the page shows the last one and keeps at most its cap of lines."""
    from playwright.sync_api import expect

    container = subprocess.run(["docker", "ps", "-q", "--filter", f"label=envplane.app={served.app}"],
                               capture_output=True, text=True, check=True).stdout.split()[0]
    page = browser.new_page()
    log_in(page, served, "bob")
    page.goto(f"{served.url}/apps/{served.app}/instances/staging/staging")
    log = page.get_by_role("log", name="live log of web")
    expect(log).to_contain_text("tick", timeout=20_000)
    subprocess.run(["docker", "exec", container, "sh", "-c",
                    "seq 1 20000 | sed 's|.*|burst &|' > /proc/1/fd/1"], check=True)
    expect(log).to_contain_text("burst 20000", timeout=60_000)
    page.screenshot(path=str(tmp_path / "burst.png"), full_page=True)
    assert log.locator(".line").count() <= 2000 + 500 + 1  # the cap, and at most one batch above it
    # it follows the end: the log box is scrolled to its newest line
    page.wait_for_function("el => el.scrollTop + el.clientHeight >= el.scrollHeight - 30",
                           arg=log.element_handle(), timeout=10_000)
    page.close()


def test_approve_as_a_second_user_promote_and_see_the_new_version(served: Served, browser: Any,
                                                                   tmp_path: Path) -> None:
    from playwright.sync_api import expect

    # bob approves v1.0.1 (released to staging by ops) for production: the ladder says it waits
    bob = browser.new_page()
    log_in(bob, served, "bob")
    expect(bob.locator(".waiting")).to_have_text("Waiting for an approval: v1.0.1 for production (runs on staging)")
    bob.get_by_role("link", name="Releases").click()
    bob.get_by_role("link", name="v1.0.1").click()
    assert bob.get_by_role("button", name=re.compile("Promote")).count() == 0  # bob may not deploy
    bob.get_by_role("button", name="Approve v1.0.1 for production").click()
    expect(bob.get_by_role("status")).to_have_text("You approved v1.0.1 for production.")
    approvals = bob.get_by_role("table", name="Approvals of v1.0.1 for production, checked now")
    expect(approvals.get_by_role("row", name=re.compile("^bob"))).to_contain_text("✓ yes")
    bob.screenshot(path=str(tmp_path / "approved.png"), full_page=True)
    bob.close()
    # alice promotes it: the job's page follows its steps to the end
    alice = browser.new_page()
    log_in(alice, served, "alice")
    alice.goto(f"{served.url}/apps/{served.app}/releases/v1.0.1")
    alice.get_by_role("button", name="Promote v1.0.1 to production").click()
    alice.wait_for_url(re.compile(r".*/jobs/[0-9a-f]{32}$"))
    steps = alice.get_by_role("log", name="steps of the job")
    expect(steps).to_contain_text("— ok", timeout=180_000)
    expect(steps).to_contain_text("wait until web answers /health.txt")
    expect(alice.locator("#job-outcome")).to_have_text("ok")  # the outcome above follows the end
    alice.screenshot(path=str(tmp_path / "promoted.png"), full_page=True)
    # the ladder shows production running the new version, healthy
    alice.get_by_role("navigation", name="Main").get_by_role("link", name="Apps").click()
    production = alice.get_by_role("table", name=f"The ladder of {served.app}").locator("tr[data-env=production]")
    expect(production.locator(".version")).to_have_text("v1.0.1")
    expect(production).to_contain_text("healthy")
    expect(alice.locator(".waiting")).to_have_count(0)  # it waits no more
    # the release's page shows production's gates, every one passed
    alice.goto(f"{served.url}/apps/{served.app}/releases/v1.0.1")
    gates = alice.get_by_role("table", name="Gates of v1.0.1 for production (latest evaluation)")
    expect(gates.get_by_role("row", name=re.compile("approval"))).to_contain_text("approved by bob")
    assert "✗ failed" not in gates.inner_text()
    alice.screenshot(path=str(tmp_path / "ladder-after.png"), full_page=True)
    alice.close()


def test_every_page_reads_without_javascript(served: Served, browser: Any, tmp_path: Path) -> None:
    from playwright.sync_api import expect

    context = browser.new_context(java_script_enabled=False)
    page = context.new_page()
    log_in(page, served, "bob")
    staging = page.get_by_role("table", name=f"The ladder of {served.app}").locator("tr[data-env=staging]")
    expect(staging.locator(".version")).to_have_text("v1.0.1")
    staging.get_by_role("link", name="staging").click()
    expect(page.get_by_role("rowheader", name="web")).to_be_visible()
    page.screenshot(path=str(tmp_path / "instance-no-js.png"), full_page=True)
    page.get_by_role("link", name="last 200 lines as text").click()
    text = page.locator("body").inner_text()
    assert "tick" in text and served.secret not in text
    context.close()

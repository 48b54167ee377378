"""The p95 the performance gate compares, and the names a release's images get."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from envplane.backends.runtime.facts import ContainerFact
from envplane.release.images import build_file, repository
from envplane.release.probe import measure, percentile, probe_urls
from envplane.target import resolve
from tests.unit.test_target import project


def test_percentile_is_nearest_rank() -> None:
    samples = [float(n) for n in range(1, 101)]
    assert percentile(samples, 95) == 95.0
    assert percentile([5.0], 95) == 5.0
    assert percentile([1.0, 2.0, 3.0, 400.0], 95) == 400.0
    with pytest.raises(ValueError):
        percentile([], 95)


def test_probe_urls_use_the_ports_the_running_containers_publish(tmp_path: Path) -> None:
    target = resolve(project(tmp_path), "staging")
    facts = [
        ContainerFact("1", "b", "running", "healthy", {"envplane.service": "backend"}, ((8000, 45001, "tcp"),)),
        ContainerFact("2", "f", "running", None, {"envplane.service": "frontend"}, ((8080, 45002, "tcp"),)),
        ContainerFact("3", "p", "running", None, {"envplane.service": "postgres"}, ((5432, 45003, "tcp"),)),
    ]
    assert probe_urls(target, facts) == ["http://127.0.0.1:45001/api/health", "http://127.0.0.1:45002/"]
    stopped = [ContainerFact("1", "b", "exited", None, {"envplane.service": "backend"}, ((8000, 1, "tcp"),))]
    assert probe_urls(target, stopped) == []


class _Slow(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        status = 500 if self.path == "/broken" else 200
        self.send_response(status)
        self.end_headers()
        self.wfile.write(b"ok")

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture()
def server() -> Iterator[str]:
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Slow)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()


def test_measure_counts_requests_and_errors_against_a_real_server(server: str) -> None:
    good = measure([f"{server}/ok"], 20)
    assert (good.requests, good.errors) == (20, 0) and good.p95_ms is not None and good.p95_ms > 0
    mixed = measure([f"{server}/ok", f"{server}/broken"], 10)
    assert (mixed.requests, mixed.errors) == (10, 5)
    assert measure([f"{server}/broken"], 5).p95_ms is None
    assert measure([], 5).requests == 0


def test_repository_drops_tag_and_digest_but_keeps_a_registry_port() -> None:
    assert repository("finance-report-backend:dev") == "finance-report-backend"
    assert repository("registry:5000/team/app:v1") == "registry:5000/team/app"
    assert repository("registry:5000/team/app") == "registry:5000/team/app"
    assert repository("app@sha256:abc") == "app"


def test_the_build_file_builds_only_services_with_build_under_the_commit_tag(tmp_path: Path) -> None:
    target = resolve(project(tmp_path), "staging")
    data = build_file(target, tmp_path, "sha-1a2b3c")
    assert data == {"name": "finance-report-release", "services": {
        "backend": {"build": {"context": str(tmp_path / "backend")},
                    "image": "finance-report-backend:sha-1a2b3c"}}}

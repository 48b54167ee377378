"""#14: a real `envplane serve` keeps its jobs in its state store: restarted, it still
answers a finished job with its outcome and its events (from any Last-Event-ID), and a job
it left running when it died is `interrupted`."""

from __future__ import annotations

import socket
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest

from envplane.server import home
from envplane.state import jobs as saved
from tests.api_kit import World, make_world, serving, sse
from tests.support import docker_engine, ensure_busybox_image, need

pytestmark = pytest.mark.integration


@pytest.fixture()
def world(tmp_path: Path) -> World:
    return make_world(tmp_path)


def events_of(base: str, world: World, job_id: str, after: int = 0) -> list[dict[str, object]]:
    headers = {**world.auth("reader"), **({"Last-Event-ID": str(after)} if after else {})}
    with httpx.stream("GET", f"{base}/api/v1/jobs/{job_id}/events", headers=headers, timeout=120) as stream:
        return list(sse(stream.iter_lines()))


def test_a_restarted_server_still_has_the_finished_job_with_its_outcome_and_events(world: World) -> None:
    need("a Docker engine", docker_engine(), "run scripts/services/docker.sh")
    ensure_busybox_image()
    try:
        with serving(world) as served:
            started = httpx.post(f"{served.base}/api/v1/apps/{world.app}/envs/test/up",
                                 headers=world.auth("ci"), json={"pr": 8}, timeout=30)
            assert started.status_code == 202, started.text
            job_id = started.json()["id"]
            before = events_of(served.base, world, job_id)
            assert before[-1]["event"] == "end" and before[-1]["data"]["state"] == "ok", before[-1]  # type: ignore[index]
            shown = httpx.get(f"{served.base}/api/v1/jobs/{job_id}", headers=world.auth("reader")).json()
        with serving(world) as again:
            answer = httpx.get(f"{again.base}/api/v1/jobs/{job_id}", headers=world.auth("reader"))
            assert answer.status_code == 200 and answer.json() == shown
            assert shown["state"] == "ok" and shown["result"]["instance"] == "pr-8"
            assert shown["events"] == len(before) - 1
            assert events_of(again.base, world, job_id) == before
            assert events_of(again.base, world, job_id, after=len(before) - 2) == before[-2:]
            listed = httpx.get(f"{again.base}/api/v1/jobs", headers=world.auth("reader")).json()
            assert [(j["id"], j["state"]) for j in listed] == [(job_id, "ok")]
    finally:
        world.cli("down", "test", "--pr", "8", "--purge")


def test_a_job_the_server_left_running_is_interrupted_when_it_starts_again(world: World) -> None:
    store = home.open_server_store(world.environ)
    left = "d" * 32
    saved.add(store, left, "up", world.app, "staging", "staging", "token:stager", socket.gethostname(),
              datetime.now(UTC))
    saved.add_event(store, left, 1, {"type": "note", "message": "pulling images"})
    # a second server on this host sharing the store, alive (this test's process): its job runs on
    running = "e" * 32
    saved.add(store, running, "up", world.app, "test", "pr-3", "token:ci", saved.this_server(),
              datetime.now(UTC))
    store.close()
    with serving(world) as served:
        job = httpx.get(f"{served.base}/api/v1/jobs/{left}", headers=world.auth("reader")).json()
        assert job["state"] == "interrupted" and job["finished_at"] is not None
        assert "server stopped" in job["problem"]["detail"]
        events = events_of(served.base, world, left)
        assert [e["event"] for e in events] == ["note", "end"]
        assert events[-1]["data"]["state"] == "interrupted"  # type: ignore[index]
        assert "interrupted" in served.log.read_text()
        other = httpx.get(f"{served.base}/api/v1/jobs/{running}", headers=world.auth("reader")).json()
        assert other["state"] == "running"
        # the app's audit log closes the job as it would have: its starter, its action, the outcome
        rows = httpx.get(f"{served.base}/api/v1/apps/{world.app}/audit", headers=world.auth("reader")).json()
        closing = [r for r in rows if r["detail"].get("job") == left]
        assert [(r["actor"], r["action"], r["env"], r["outcome"]) for r in closing] == [
            ("token:stager", "api:up", "staging", "interrupted")]
        assert "server stopped" in closing[0]["detail"]["error"]

"""#14: `down` and the previews as service functions, on a real engine and state store: they
report their progress through one callback, raise instead of asking or printing, and return
what the CLI prints (its --json is their `as_dict()`)."""

from __future__ import annotations

import json
import os
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from envplane import actions, lifecycle
from envplane.errors import LockError, NeedsConfirmation, NothingToDo
from envplane.events import Event, Note, as_dict
from envplane.secret import masking
from envplane.service import instances, previews
from envplane.state import locks
from tests.support import busybox_app, cli, docker_engine, ensure_busybox_image, free_port_block, need

ENV = {"DATA_PATH": "", "ENVPLANE_SECRETS": "file", "ENVPLANE_SECRET_KEY": ""}


@pytest.fixture()
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[actions.Project]:
    need("a Docker engine", docker_engine(), "run scripts/services/docker.sh")
    ensure_busybox_image()
    env = {**ENV, "ENVPLANE_HOME": str(tmp_path / "home"), "XDG_DATA_HOME": str(tmp_path / "share")}
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    folder = tmp_path / "app"
    name = f"sd{uuid.uuid4().hex[:6]}"
    busybox_app(folder, name, free_port_block())
    yield actions.open_project(folder, os.environ)
    for args in (["down", "test", "--pr", "7", "--purge"], ["down", "test", "--pr", "8", "--purge"],
                 ["down", "staging", "--purge", "--yes", "--no-backup"]):
        cli(*args, cwd=folder, env=env)


def running(project: actions.Project, instance: str) -> bool:
    from envplane.service import status

    return any(s.instance == instance for s in status.of_containers(project))


def test_down_returns_what_the_cli_prints_and_prints_nothing(
        project: actions.Project, capfd: pytest.CaptureFixture[str]) -> None:
    with masking():
        instances.up(project, "test", 7)
        done = instances.down(project, "test", 7)
    assert (done.app, done.instance, done.purge, done.partial) == (project.app, "pr-7", False, False)
    assert done.left.empty and not running(project, "pr-7")
    assert capfd.readouterr() == ("", "")  # the service layer never prints
    with pytest.raises(NothingToDo):  # the CLI's exit 0, "is not running: nothing to stop"
        instances.down(project, "test", 7)
    purged = instances.down(project, "test", 7, purge=True)
    shown = json.loads(cli("down", "test", "--pr", "7", "--purge", "--json", cwd=project.root).stdout)
    assert shown == {"nothing_to_do": True, "message": f"{project.app} pr-7: nothing to remove (never "
                     "deployed here, or purged already)", "hint": ""}
    assert purged.as_dict() == {"instance": "pr-7", "purged": True, "partial": False, "kept": [],
                                "left": {"containers": [], "networks": [], "volumes": []},
                                "final_backup": None}


def test_down_reports_that_it_waits_for_the_lock_and_fails_at_once_without_wait(
        project: actions.Project) -> None:
    with masking():
        instances.up(project, "test", 8)
    session = lifecycle.open_session(project)
    held = threading.Event()
    release = threading.Event()

    def hold() -> None:
        with locks.acquire(session.store, project.app, "test", "pr-8", holder="alice"):
            held.set()
            release.wait(30)

    holder = threading.Thread(target=hold)
    holder.start()
    try:
        assert held.wait(30)
        with pytest.raises(LockError):
            instances.down(project, "test", 8, wait=False)
        assert running(project, "pr-8")  # refused: nothing was stopped
        seen: list[Event] = []

        def report(event: Event) -> None:
            seen.append(event)
            release.set()  # alice lets go once the wait is reported

        done = instances.down(project, "test", 8, report=report)
    finally:
        release.set()
        holder.join()
    assert done.instance == "pr-8" and not running(project, "pr-8")
    waits = [e for e in seen if isinstance(e, Note) and e.level == "warning"]
    assert waits and waits[0].message.startswith("waiting: alice (") and "holds this instance" in waits[0].message
    assert all(json.loads(json.dumps(as_dict(e)))["type"] == "note" for e in seen)


def test_a_staging_purge_is_refused_until_confirmed_and_takes_a_final_backup(
        project: actions.Project) -> None:
    with masking():
        instances.up(project, "staging")
        with pytest.raises(NeedsConfirmation) as refused:
            instances.down(project, "staging", purge=True)
        assert running(project, "staging")  # nothing was removed
        assert refused.value.exit_code == 2 and "--yes" in refused.value.hint
        assert refused.value.question.startswith(f"Purge {project.app} staging: its data path")
        seen: list[Event] = []
        done = instances.down(project, "staging", purge=True, yes=True, report=seen.append)
    assert done.purge and not done.partial and done.final_backup
    assert not running(project, "staging")
    notes = [e.message for e in seen if isinstance(e, Note)]
    assert f"final backup {done.final_backup} of {project.app} staging taken" in " ".join(notes)
    listed = json.loads(cli("backups", "staging", "--json", cwd=project.root).stdout)
    assert done.final_backup in json.dumps(listed)


def test_previews_up_list_gc_and_down_through_the_service(
        project: actions.Project, capfd: pytest.CaptureFixture[str]) -> None:
    with masking():
        up = previews.up(project, 7)
        previews.up(project, 8)
    assert up.instance == "pr-7" and up.urls
    listed = previews.list_previews(project)
    assert {p.instance: p.status for p in listed.previews} == {"pr-7": "ok", "pr-8": "ok"}
    shown = json.loads(cli("preview", "list", "--json", cwd=project.root).stdout)
    assert shown == [p.as_dict() for p in listed.previews]  # the CLI's --json is the service's data

    with masking():
        gone = previews.down(project, 8)
    assert gone.down is not None and gone.down.purge and not running(project, "pr-8")
    with pytest.raises(NothingToDo):
        previews.down(project, 8)

    planned = previews.gc(project, idle="0s", dry_run=True)
    assert [(c.instance, c.outcome) for c in planned.previews] == [("pr-7", "planned")]
    assert running(project, "pr-7")
    seen: list[Event] = []
    collected = previews.gc(project, idle="0s", now=None, report=seen.append)
    assert [(c.instance, c.outcome) for c in collected.previews] == [("pr-7", "destroyed")]
    assert [e.message for e in seen if isinstance(e, Note)] == [collected.previews[0].line()]
    assert collected.previews[0].line().startswith("destroyed pr-7: no deploy for ")
    assert not running(project, "pr-7")
    assert {p.instance: p.status for p in previews.list_previews(project).previews} == {
        "pr-7": "purged", "pr-8": "purged"}
    assert capfd.readouterr() == ("", "")


def test_gc_of_an_app_that_never_had_a_preview_makes_no_store(project: actions.Project) -> None:
    from envplane.state import location

    done = previews.gc(project)
    assert done.as_dict() == {"dry_run": False, "previews": []} and not done.ever_deployed
    assert not location.state_path(project.root).exists()


@pytest.fixture()
def platform_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    need("a Docker engine", docker_engine(), "run scripts/services/docker.sh")
    monkeypatch.setenv("ENVPLANE_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("ENVPLANE_SECRETS", "file")  # the service sets it for the process: restored after
    for variable in ("ENVPLANE_POSTGRES_URL", "ENVPLANE_S3_ENDPOINT", "ENVPLANE_REDIS_URL", "DATA_PATH"):
        monkeypatch.setenv(variable, "")
    return tmp_path / "home"


def test_platform_envs_are_all_checked_before_any_changes(platform_home: Path) -> None:
    from envplane.errors import UsageError
    from envplane.service import platform

    for operation in (platform.up, platform.down):
        with pytest.raises(UsageError, match="env local runs services as local processes"):
            operation(["dr", "local"])
    assert not (platform_home / "platform" / ".envplane" / "secrets.enc").exists()  # dr's neither
    done = platform.down(["dr", "ci"])  # neither runs here: each says so, none is skipped
    assert [(d.env, d.down, d.nothing and d.nothing.message) for d in done] == [
        ("dr", None, "platform dr is not running: nothing to stop"),
        ("ci", None, "platform ci is not running: nothing to stop")]
    assert done[0].as_dict() == {"env": "dr", "nothing_to_do": True, "secrets_removed": False,
                                 "message": "platform dr is not running: nothing to stop"}


def test_platform_operations_leave_the_process_environment_alone(
        platform_home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The server runs several apps in one process: `platform down` must not switch every
    other app's secret store by setting ENVPLANE_SECRETS process-wide."""
    import os

    from envplane.service import platform

    monkeypatch.delenv("ENVPLANE_SECRETS")
    platform.down(["ci"])  # nothing runs: it still opens the platform and its store
    assert os.environ.get("ENVPLANE_SECRETS") is None  # never the whole environ: it holds secrets

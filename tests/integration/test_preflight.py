"""#10.2, #10.3: `up` proves the new instance can start before it changes anything.

A healthy staging, then a spec change that cannot start: `up` fails in its pre-flight and
the container that served before still serves, untouched (same container, still answering).
A port another program holds stops `up` (and `release`) before any folder, database,
bucket, Redis user, secret or version number is made.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support import busybox_app, cli, docker_engine, ensure_busybox_image, free_port_block, need


def _served(port: int) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/health.txt", timeout=10) as response:
        return response.read().decode()


def _container(name: str) -> tuple[str, str]:
    """(id, state) of the staging web container."""
    done = subprocess.run(["docker", "inspect", "--format", "{{.Id}} {{.State.Status}}", f"{name}-web-staging"],
                          capture_output=True, text=True, check=True)
    found, state = done.stdout.split()
    return found, state


@pytest.fixture()
def staging(tmp_path: Path) -> Iterator[tuple[Path, str, int]]:
    need("a Docker engine", docker_engine(), "run scripts/services/docker.sh")
    ensure_busybox_image()
    name = f"pf{uuid.uuid4().hex[:6]}"
    block = free_port_block()
    busybox_app(tmp_path, name, block)  # staging publishes web's 8080 on block + 150
    yield tmp_path, name, block + 150
    cli("down", "staging", "--purge", "--yes", cwd=tmp_path)
    subprocess.run(["docker", "compose", "-p", f"{name}-staging-trial", "down"], capture_output=True)


CHANGES = {
    # first: before the pre-flight, Compose stopped the healthy web and then failed to start this
    "a command that is not found": ('command: ["httpd"', 'command: ["htpd"',
                                    "its command 'htpd' is not in image busybox:stable"),
    "an image that is nowhere": ("image: busybox:stable", "image: envplane-test-no-such-image:1",
                                 "image envplane-test-no-such-image:1 of service web is not on this engine"),
    "a value only the engine refuses": ("init: true", "init: true\n    cpus: 64",
                                        "cannot be created: Error response from daemon: Range of CPUs"),
    "a restart policy the engine does not know": ("init: true", "init: true\n    restart: sometimes",
                                                  "unknown restart policy 'sometimes'"),
    "a port typo": ('ports: ["8080:8080"]', 'ports: ["8080/8080"]', "invalid protocol '8080'"),
}


@pytest.mark.integration
def test_a_change_that_cannot_start_leaves_the_running_staging_serving(
        staging: tuple[Path, str, int]) -> None:
    folder, name, port = staging
    up = cli("up", "staging", "--timeout", "60", cwd=folder)
    assert up.returncode == 0, up.stderr
    assert _served(port) == "ok\n"
    before = _container(name)
    compose = folder / "compose.yaml"
    good = compose.read_text()
    for what, (old, new, said) in CHANGES.items():
        assert old in good, what
        compose.write_text(good.replace(old, new))
        failed = cli("up", "staging", "--timeout", "60", cwd=folder)
        assert failed.returncode in (1, 2), f"{what}: {failed.stderr}"
        assert _container(name) == (before[0], "running"), what  # the same container, never stopped
        assert _served(port) == "ok\n", what
        assert said in failed.stderr, f"{what}: {failed.stderr}"
    compose.write_text(good)


def _with_resources(folder: Path) -> dict[str, str]:
    """The app's web uses a database, a bucket and a Redis user on the test servers."""
    from tests.integration.test_provisioning import servers

    spec = folder / "envplane.yaml"
    spec.write_text(spec.read_text().replace("    health: /health.txt\n",
                                             "    health: /health.txt\n    uses: [postgres, s3, redis]\n")
                    + "resources:\n  postgres: {}\n  s3: {}\n  redis: {}\n")
    return {**servers(), "DATA_PATH": "", "ENVPLANE_SECRET_KEY": "", "ENVPLANE_SECRETS": "file"}


@pytest.mark.integration
def test_a_port_held_by_another_program_stops_up_before_anything_is_made(
        staging: tuple[Path, str, int]) -> None:
    """#10.3: the database, bucket and Redis user were made before the port check failed."""
    from envplane.backends.cache.redis import RedisUsers
    from envplane.backends.database.postgres import PostgresDatabases
    from envplane.backends.objects.s3 import S3Store
    from envplane.secret import Secret

    folder, name, port = staging
    env = _with_resources(folder)
    with socket.socket() as holder:
        holder.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # past an old TIME_WAIT
        holder.bind(("0.0.0.0", port))
        holder.listen()
        failed = cli("up", "staging", "--json", cwd=folder, env=env)
        assert failed.returncode == 1, failed.stderr
        error = json.loads(failed.stdout)["error"]["problems"][0]
        assert error["message"] == f"host port {port}/tcp of web is in use by another program"
        steps = [s["kind"] for s in json.loads(cli("plan", "staging", "--json", cwd=folder, env=env).stdout)["steps"]]
        assert steps.index("ports") < steps.index("directory") < steps.index("secrets") < steps.index("database")
    db = name + "_staging"
    assert PostgresDatabases(Secret(env["ENVPLANE_POSTGRES_URL"])).observe(db).keys() == frozenset()
    s3 = S3Store(env["ENVPLANE_S3_ENDPOINT"], env["ENVPLANE_S3_ACCESS_KEY"], Secret(env["ENVPLANE_S3_SECRET_KEY"]))
    assert s3.observe(f"{name}-staging").keys() == frozenset()
    assert RedisUsers(Secret(env["ENVPLANE_REDIS_URL"])).observe(f"{name}:staging:").keys_observed() == frozenset()
    assert not (folder / ".envplane" / "secrets.enc").exists()  # no password was generated
    assert not Path(f"/tmp/envplane-tests/{name}/staging").exists()  # no data folder
    assert not (folder / ".envplane" / "instances" / "staging" / "staging" / "compose.yaml").exists()
    listed = subprocess.run(["docker", "ps", "-a", "--filter", f"label=envplane.app={name}", "-q"],
                            capture_output=True, text=True, check=True).stdout
    assert listed.strip() == ""
    try:
        up = cli("up", "staging", "--timeout", "60", cwd=folder, env=env)  # the port is free again
        assert up.returncode == 0, up.stderr
        assert _served(port) == "ok\n"
    finally:
        cli("down", "staging", "--purge", "--yes", cwd=folder, env=env)


@pytest.mark.integration
def test_a_server_that_does_not_answer_stops_up_before_anything_is_made(
        staging: tuple[Path, str, int]) -> None:
    """#10.3: Redis is down (nothing listens at its URL): `up` used to make the database and
    the bucket, then fail at the Redis user; now it fails first, naming Redis."""
    from envplane.backends.database.postgres import PostgresDatabases
    from envplane.backends.objects.s3 import S3Store
    from envplane.secret import Secret

    folder, name, _ = staging
    env = _with_resources(folder)
    with socket.socket() as closed:  # a port nothing listens on
        closed.bind(("127.0.0.1", 0))
        env["ENVPLANE_REDIS_URL"] = f"redis://default:x@127.0.0.1:{closed.getsockname()[1]}/0"
        failed = cli("up", "staging", "--json", cwd=folder, env=env)
    assert failed.returncode == 1, failed.stdout + failed.stderr
    assert "Redis at 127.0.0.1" in json.loads(failed.stdout)["error"]["problems"][0]["message"]
    assert PostgresDatabases(Secret(env["ENVPLANE_POSTGRES_URL"])).observe(name + "_staging").keys() == frozenset()
    s3 = S3Store(env["ENVPLANE_S3_ENDPOINT"], env["ENVPLANE_S3_ACCESS_KEY"], Secret(env["ENVPLANE_S3_SECRET_KEY"]))
    assert s3.observe(f"{name}-staging").keys() == frozenset()
    assert not (folder / ".envplane" / "secrets.enc").exists()  # no password was generated
    assert not Path(f"/tmp/envplane-tests/{name}/staging").exists()  # no data folder


@pytest.mark.integration
def test_release_takes_no_version_before_its_pre_flight_passed(staging: tuple[Path, str, int]) -> None:
    """#10.3: a version number was used up by a release whose deploy then failed its port check."""
    from tests.release_kit import git

    folder, _, port = staging
    (folder / ".gitignore").write_text(".envplane/\n")
    git(folder, "init", "-q")
    git(folder, "add", "-A")
    git(folder, "commit", "-qm", "the app")
    with socket.socket() as holder:
        holder.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # past an old TIME_WAIT
        holder.bind(("0.0.0.0", port))
        holder.listen()
        failed = cli("release", "staging", cwd=folder)
    assert failed.returncode == 1, failed.stderr
    assert f"host port {port}/tcp of web is in use by another program" in failed.stderr
    assert json.loads(cli("releases", "--json", cwd=folder).stdout) == []
    released = cli("release", "staging", "--json", cwd=folder)
    assert released.returncode == 0, released.stderr
    assert [r["version"] for r in json.loads(cli("releases", "--json", cwd=folder).stdout)] == ["v1.0.0"]
    assert _served(port) == "ok\n"


@pytest.mark.integration
def test_new_containers_that_do_not_become_healthy_give_way_to_the_previous_ones(
        staging: tuple[Path, str, int]) -> None:
    """What no pre-flight can prove — the program starts, then dies — fails at health; `up`
    then starts the previous containers again (their file, their images) and says so."""
    folder, name, port = staging
    assert cli("up", "staging", "--timeout", "60", cwd=folder).returncode == 0
    compose = folder / "compose.yaml"
    good = compose.read_text()
    compose.write_text(good.replace('command: ["httpd", "-f", "-p", "8080", "-h", "/www"]',
                                    'command: ["sh", "-c", "exit 3"]'))
    failed = cli("up", "staging", "--timeout", "10", cwd=folder)
    assert failed.returncode == 1, failed.stderr
    assert "the previous containers run again, as before this `up`" in failed.stderr
    assert _container(name)[1] == "running"
    assert _served(port) == "ok\n"
    compose.write_text(good)
    again = cli("up", "staging", "--timeout", "60", cwd=folder)  # and the next good `up` goes on from there
    assert again.returncode == 0, again.stderr
    assert _served(port) == "ok\n"


@pytest.mark.integration
def test_an_unhealthy_no_op_up_recreates_nothing(staging: tuple[Path, str, int]) -> None:
    """A failed health check after a `start` that replaced nothing (the app itself answers 404
    now, the Compose file is the same) leaves the very containers that ran: going back to the
    previous containers would recreate them for nothing."""
    folder, name, _ = staging
    assert cli("up", "staging", "--timeout", "60", cwd=folder).returncode == 0
    before = _container(name)
    (folder / "www" / "health.txt").unlink()  # mounted: the running httpd answers 404 now
    failed = cli("up", "staging", "--timeout", "5", "--json", cwd=folder)
    assert failed.returncode == 1, failed.stderr
    assert "previous containers" not in failed.stdout
    assert _container(name) == (before[0], "running")


@pytest.mark.integration
def test_the_pre_flight_neither_pulls_nor_builds_an_image_the_engine_has(
        staging: tuple[Path, str, int]) -> None:
    """The pre-flight runs on every `up`: an image on the engine is used as it is. This one
    cannot be pulled (no registry has it) and its build fails, so a pull or a build fails `up`."""
    folder, name, port = staging
    image = f"envplane-test-local-{name}:1"
    (folder / "broken").mkdir()
    (folder / "broken" / "Dockerfile").write_text("FROM busybox:stable\nRUN exit 7\n")
    compose = folder / "compose.yaml"
    compose.write_text(compose.read_text().replace("image: busybox:stable",
                                                   f"image: {image}\n    build: ./broken"))
    subprocess.run(["docker", "tag", "busybox:stable", image], check=True, capture_output=True)
    try:
        for _ in range(2):  # the first up makes the instance, the second changes nothing
            up = cli("up", "staging", "--timeout", "60", "--json", cwd=folder)
            assert up.returncode == 0, up.stdout + up.stderr
            steps = {s["kind"]: s["state"] for s in json.loads(up.stdout)["steps"]}
            assert "build" not in steps and steps["images"] == "ok"
            assert _served(port) == "ok\n"
        assert steps["trial"] == "skip"  # the same file with the same images passed one already
    finally:
        cli("down", "staging", "--purge", "--yes", cwd=folder)
        subprocess.run(["docker", "rmi", image], capture_output=True)


def _trial_of(up: subprocess.CompletedProcess[str]) -> dict[str, object]:
    assert up.returncode == 0, up.stdout + up.stderr
    return next(s for s in json.loads(up.stdout)["steps"] if s["kind"] == "trial")


@pytest.mark.integration
def test_the_trial_runs_only_when_a_running_instance_has_something_to_protect(
        staging: tuple[Path, str, int]) -> None:
    """#11: the trial exists so `up` never stops a healthy service before it knows the new
    one can start. A new instance, or one whose containers are all stopped, has none: its
    first `up` skips the trial and says why. A running one keeps it."""
    folder, name, port = staging
    fresh = _trial_of(cli("up", "staging", "--timeout", "60", "--json", cwd=folder))
    assert (fresh["state"], fresh.get("reason")) == ("skip", "nothing running to protect")
    assert _served(port) == "ok\n"
    compose = folder / "compose.yaml"
    good = compose.read_text()
    compose.write_text(good.replace("init: true", "init: true\n    environment: {CHANGED: '1'}"))
    running = _trial_of(cli("up", "staging", "--timeout", "60", "--json", cwd=folder))
    assert running["state"] == "ok"  # the new file was tried beside the serving container
    subprocess.run(["docker", "stop", "--time", "1", f"{name}-web-staging"],
                   capture_output=True, check=True)
    compose.write_text(good.replace("init: true", "init: true\n    environment: {CHANGED: '2'}"))
    stopped = _trial_of(cli("up", "staging", "--timeout", "60", "--json", cwd=folder))
    assert (stopped["state"], stopped.get("reason")) == ("skip", "nothing running to protect")
    assert _served(port) == "ok\n"


@pytest.mark.integration
def test_down_never_asks_which_compose_the_engine_has(staging: tuple[Path, str, int], tmp_path: Path) -> None:
    """#11.2: `docker compose version` (0.2-0.3 s: the plugin's start) ran on every down,
    which runs no Compose command; `up` asks once."""
    folder, _, _ = staging
    real = subprocess.run(["which", "docker"], capture_output=True, text=True, check=True).stdout.strip()
    shims, calls = tmp_path / "shims", tmp_path / "docker-calls"
    shims.mkdir()
    (shims / "docker").write_text(f'#!/bin/sh\necho "$*" >> {calls}\nexec {real} "$@"\n')
    (shims / "docker").chmod(0o755)
    env = {"PATH": f"{shims}:{os.environ['PATH']}"}
    up = cli("up", "staging", "--timeout", "60", cwd=folder, env=env)
    assert up.returncode == 0, up.stderr
    asked = [line for line in calls.read_text().splitlines() if line.startswith("compose version")]
    assert len(asked) == 1
    calls.unlink()
    down = cli("down", "staging", cwd=folder, env=env)
    assert down.returncode == 0, down.stderr
    assert not [line for line in calls.read_text().splitlines() if line.startswith("compose version")]

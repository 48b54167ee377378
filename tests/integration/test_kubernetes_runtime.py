"""`runtime: kubernetes` through the CLI, against a FAKE kubectl (tests/fake_kubectl.py): no
Kubernetes API server can run here, so these tests check what envplane sends a cluster and
what it does with the answers. The real thing is README's k3s walk-through.
"""

from __future__ import annotations

import base64
import json
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from tests.support import FAKE_KUBECTL_CONTEXT, cli, fake_kubectl, kubectl_calls, need

API_KEY = f"api-{uuid.uuid4().hex}"
DB_PASSWORD = f"db-{uuid.uuid4().hex}"
FROM_SHELL = f"shell-{uuid.uuid4().hex}"
ENV_FILE_VALUE = f"envfile-{uuid.uuid4().hex}"
SECRET_VALUES = (API_KEY, DB_PASSWORD, FROM_SHELL, ENV_FILE_VALUE)

COMPOSE = """\
services:
  web:
    image: busybox:stable
    command: ["httpd", "-f", "-p", "8080", "-h", "/www"]
    ports: ["8080:8080"]
    environment:
      GREETING: "yes"
      FROM_SHELL:
    env_file: [web.env]
    secrets: [db-password]
    healthcheck: {test: ["CMD", "wget", "-q", "-O-", "http://127.0.0.1:8080/"], interval: 2s}
  db:
    image: postgres:16
    volumes: ["db_data:/var/lib/postgresql/data"]
    secrets: [db-password]
volumes:
  db_data: {}
secrets:
  db-password: {file: ./db-password.txt}
"""

KUBE = f"    runtime: kubernetes\n    kubernetes: {{context: {FAKE_KUBECTL_CONTEXT}}}\n"


def write_app(folder: Path, name: str, compose: str = COMPOSE) -> None:
    (folder / "compose.yaml").write_text(compose)
    (folder / "web.env").write_text(f"FROM_ENV_FILE={ENV_FILE_VALUE}\n")
    (folder / "db-password.txt").write_text(DB_PASSWORD)
    (folder / "envplane.yaml").write_text(
        f"app: {name}\ndomain: example.com\ncompose: compose.yaml\n"
        "services:\n  web:\n    public: 8080\n    secrets: [API_KEY]\n"
        f"environments:\n  staging:\n{KUBE}  test:\n{KUBE}")


@pytest.fixture()
def app(tmp_path: Path) -> tuple[Path, str, dict[str, str]]:
    name = f"k{uuid.uuid4().hex[:8]}"
    folder = tmp_path / "app"
    folder.mkdir()
    write_app(folder, name)
    env = {**fake_kubectl(tmp_path / "kubectl"), "ENVPLANE_SECRETS": "file", "ENVPLANE_SECRET_KEY": "",
           "DATA_PATH": "", "FROM_SHELL": FROM_SHELL}
    for args in (("staging",), ("test", "--pr", "1"), ("test", "--pr", "2")):
        stored = subprocess.run([sys.executable, "-m", "envplane", "secrets", "set", args[0], "API_KEY",
                                 "--service", "web", *args[1:]], input=API_KEY, cwd=folder, capture_output=True,
                                text=True, timeout=120, env={**__import__("os").environ, **env})
        assert stored.returncode == 0, stored.stderr
    return folder, name, env


def objects(env: dict[str, str], ns: str) -> dict[str, dict[str, object]]:
    """The objects the fake kubectl holds in namespace ns, as Kind/name."""
    root = Path(env["FAKE_KUBECTL_STATE"]) / "objects" / ns
    return {f"{p.parent.name}/{p.stem}": json.loads(p.read_text()) for p in root.glob("*/*.json")}


def namespaces(env: dict[str, str]) -> set[str]:
    return {p.stem for p in (Path(env["FAKE_KUBECTL_STATE"]) / "objects" / "_" / "Namespace").glob("*.json")}


def verbs(env: dict[str, str]) -> list[str]:
    """Each call as its verb and first words, without the context flag."""
    out = []
    for call in kubectl_calls(env):
        argv = [a for a in call["argv"] if not a.startswith("--context=")]  # type: ignore[union-attr]
        out.append(" ".join(argv[:3]))
    return out


def test_up_applies_server_side_to_the_named_context_and_waits_for_each_rollout(
        app: tuple[Path, str, dict[str, str]]) -> None:
    folder, name, env = app
    planned = json.loads(cli("plan", "staging", "--json", cwd=folder, env=env).stdout)
    assert (planned["target"]["namespace"], planned["target"]["context"]) == (f"{name}-staging",
                                                                              FAKE_KUBECTL_CONTEXT)
    assert [s["kind"] for s in planned["steps"]][-6:] == ["kube-secrets", "apply", "prune", "rollout", "rollout",
                                                         "record"]
    assert kubectl_calls(env) == []  # plan changes nothing, asks nothing
    done = cli("up", "staging", cwd=folder, env=env)
    assert done.returncode == 0, done.stderr
    assert f"{name} staging is up" in done.stdout
    assert f"https://{name}-staging.example.com/" in done.stdout
    calls = kubectl_calls(env)
    assert all(f"--context={FAKE_KUBECTL_CONTEXT}" in c["argv"] for c in calls)  # type: ignore[operator]
    manifests = folder / ".envplane" / "instances" / "staging" / "staging" / "kubernetes"
    assert [v for v in verbs(env)] == [
        "get --raw=/readyz",
        f"get namespace {name}-staging",
        "apply --server-side --field-manager=envplane",  # the namespace
        "apply --server-side --field-manager=envplane",  # the Secrets, on stdin
        "apply --server-side --field-manager=envplane",  # the folder
        "get deployments.apps,statefulsets.apps,services,ingresses.networking.k8s.io,"
        f"networkpolicies.networking.k8s.io,secrets --namespace={name}-staging",
        "rollout status deployment/web",
        "rollout status statefulset/db",
    ]
    applied = [c["argv"][-1] for c in calls if "apply" in c["argv"]]  # type: ignore[index,operator]
    assert applied == [f"--filename={manifests / '00-namespace.yaml'}", "--filename=-", f"--filename={manifests}"]
    held = objects(env, f"{name}-staging")
    assert held["Deployment/web"]["kind"] == "Deployment" and held["StatefulSet/db"]["kind"] == "StatefulSet"
    assert "PersistentVolumeClaim/db-data" in held and "Ingress/public" in held
    web = held["Deployment/web"]["spec"]["template"]["spec"]["containers"][0]  # type: ignore[index]
    assert {"name": "GREETING", "value": "yes"} in web["env"]  # a string, not YAML 1.1's true
    assert web["envFrom"] == [{"secretRef": {"name": "web-env"}}]
    secret = held["Secret/web-env"]["data"]  # type: ignore[index]
    assert {k: base64.b64decode(v).decode() for k, v in secret.items()} == {  # type: ignore[union-attr]
        "API_KEY": API_KEY, "FROM_SHELL": FROM_SHELL, "FROM_ENV_FILE": ENV_FILE_VALUE}
    assert base64.b64decode(held["Secret/db-password-secret"]["data"]["value"]).decode() == DB_PASSWORD  # type: ignore[index]


def test_no_secret_value_is_written_to_disk_or_a_command_line(app: tuple[Path, str, dict[str, str]],
                                                               tmp_path: Path) -> None:
    folder, _name, env = app
    assert cli("up", "staging", cwd=folder, env=env).returncode == 0
    out = tmp_path / "rendered"
    assert cli("render", "staging", "--format", "kubernetes", "-o", str(out), cwd=folder, env=env).returncode == 0
    chart = tmp_path / "chart"
    assert cli("render", "--format", "helm", "-o", str(chart), cwd=folder, env=env).returncode == 0
    written = [p for root in (folder / ".envplane", out, chart) for p in root.rglob("*") if p.is_file()]
    assert any(p.name == "30-web.yaml" for p in written)
    for path in written:
        data = path.read_bytes()
        for value in SECRET_VALUES:
            assert value.encode() not in data, f"{value[:6]}… in {path}"
            assert base64.b64encode(value.encode()) not in data, f"{value[:6]}… (base64) in {path}"
    for call in kubectl_calls(env):
        assert not any(v in " ".join(call["argv"]) for v in SECRET_VALUES)  # type: ignore[arg-type]
    on_stdin = [c["stdin"] for c in kubectl_calls(env) if c["stdin"]]
    assert len(on_stdin) == 1 and base64.b64encode(API_KEY.encode()).decode() in on_stdin[0]  # type: ignore[operator]
    shown = cli("render", "staging", "--format", "kubernetes", "--include-secrets", "-o", str(out),
                cwd=folder, env=env)
    assert shown.returncode == 0, shown.stderr
    assert base64.b64encode(API_KEY.encode()).decode() in (out / "10-secrets.yaml").read_text()
    assert (out / "10-secrets.yaml").stat().st_mode & 0o077 == 0


def test_each_pr_gets_its_namespace_and_purging_one_leaves_the_other(
        app: tuple[Path, str, dict[str, str]]) -> None:
    folder, name, env = app
    for pr in ("1", "2"):
        done = cli("up", "test", "--pr", pr, cwd=folder, env=env)
        assert done.returncode == 0, done.stderr
    assert namespaces(env) == {f"{name}-test-pr-1", f"{name}-test-pr-2"}
    status = json.loads(cli("status", "test", "--json", cwd=folder, env=env).stdout)
    assert sorted((r["instance"], r["service"]) for r in status) == [
        ("pr-1", "db"), ("pr-1", "web"), ("pr-2", "db"), ("pr-2", "web")]
    assert {r["namespace"] for r in status} == {f"{name}-test-pr-1", f"{name}-test-pr-2"}
    done = cli("down", "test", "--pr", "1", "--purge", cwd=folder, env=env)
    assert done.returncode == 0, done.stderr
    assert namespaces(env) == {f"{name}-test-pr-2"}
    assert "StatefulSet/db" in objects(env, f"{name}-test-pr-2")


def test_down_keeps_the_volumes_and_a_removed_service_is_pruned_but_not_its_volume(
        app: tuple[Path, str, dict[str, str]]) -> None:
    folder, name, env = app
    ns = f"{name}-staging"
    assert cli("up", "staging", cwd=folder, env=env).returncode == 0
    compose = (folder / "compose.yaml").read_text()
    only_web = compose.split("  db:\n")[0] + "volumes:\n  db_data: {}\nsecrets:\n  db-password: {file: ./db-password.txt}\n"
    (folder / "compose.yaml").write_text(only_web)
    done = cli("up", "staging", cwd=folder, env=env)
    assert done.returncode == 0, done.stderr
    held = objects(env, ns)
    assert "StatefulSet/db" not in held and "Service/db" not in held
    assert "PersistentVolumeClaim/db-data" in held  # data goes only with `down --purge`
    deleted = [c["argv"] for c in kubectl_calls(env) if "delete" in c["argv"]]  # type: ignore[operator]
    assert deleted and set(deleted[-1][-2:]) == {"statefulset.apps/db", "service/db"}  # type: ignore[index]
    done = cli("down", "staging", cwd=folder, env=env)
    assert done.returncode == 0, done.stderr
    assert set(objects(env, ns)) == {"PersistentVolumeClaim/db-data"} and ns in namespaces(env)


def test_a_namespace_someone_else_made_is_neither_taken_over_nor_purged(
        app: tuple[Path, str, dict[str, str]]) -> None:
    folder, name, env = app
    ns = f"{name}-staging"
    theirs = Path(env["FAKE_KUBECTL_STATE"]) / "objects" / "_" / "Namespace" / f"{ns}.json"
    theirs.parent.mkdir(parents=True)
    theirs.write_text(json.dumps({"kind": "Namespace", "metadata": {"name": ns, "labels": {"team": "other"}}}))
    done = cli("up", "staging", cwd=folder, env=env)
    assert done.returncode == 1
    assert f"namespace {ns} exists and is not {name} staging's" in done.stderr
    assert not any("--filename" in " ".join(c["argv"]) for c in kubectl_calls(env))  # type: ignore[arg-type]
    done = cli("down", "staging", "--purge", "--yes", "--no-backup", cwd=folder, env=env)
    assert done.returncode == 1 and "is not" in done.stderr
    assert theirs.exists()


def test_a_failed_rollout_fails_up_with_the_workload_named(app: tuple[Path, str, dict[str, str]]) -> None:
    folder, _name, env = app
    done = cli("up", "staging", "--timeout", "5", cwd=folder, env={**env, "FAKE_KUBECTL_ROLLOUT_FAIL": "web"})
    assert done.returncode == 1
    assert "Deployment web in namespace" in done.stderr and "did not roll out within 5 s" in done.stderr
    log = json.loads(cli("audit", "log", "--json", cwd=folder, env=env).stdout)
    assert log[-1]["action"] == "up" and log[-1]["outcome"] == "failed"


def test_an_unreachable_cluster_or_a_missing_context_stops_before_anything_changes(
        app: tuple[Path, str, dict[str, str]]) -> None:
    folder, _name, env = app
    done = cli("up", "staging", cwd=folder, env={**env, "FAKE_KUBECTL_DOWN": "1"})
    assert done.returncode == 1
    assert f"the cluster of context {FAKE_KUBECTL_CONTEXT} does not answer" in done.stderr
    spec = folder / "envplane.yaml"
    spec.write_text(spec.read_text().replace(f"    kubernetes: {{context: {FAKE_KUBECTL_CONTEXT}}}\n", "", 1))
    done = cli("up", "staging", cwd=folder, env=env)
    assert done.returncode == 2
    assert "environments.staging.runtime: env staging runs on Kubernetes but names no cluster" in done.stderr
    assert "envplane.yaml:10)" in done.stderr


def test_a_field_that_does_not_map_is_refused_at_plan_time_with_its_line(
        app: tuple[Path, str, dict[str, str]]) -> None:
    folder, _name, env = app
    compose = folder / "compose.yaml"
    compose.write_text(compose.read_text().replace("    image: postgres:16\n",
                                                   "    image: postgres:16\n    privileged: true\n"))
    line = compose.read_text().splitlines().index("    privileged: true") + 1
    for command in (("plan", "staging"), ("up", "staging")):
        done = cli(*command, cwd=folder, env=env)
        assert done.returncode == 2, done.stderr
        assert "services.db.privileged: privileged does not map to Kubernetes" in done.stderr
        assert f"compose.yaml:{line})" in done.stderr
    assert kubectl_calls(env) == []


def test_logs_read_the_service_pods_and_releases_are_refused_until_images_reach_a_registry(
        app: tuple[Path, str, dict[str, str]]) -> None:
    folder, name, env = app
    done = cli("logs", "staging", "web", cwd=folder, env=env)
    assert done.returncode == 0, done.stderr
    assert kubectl_calls(env)[-1]["argv"][1:] == ["logs",  # type: ignore[index]
        f"--namespace={name}-staging", "--selector=envplane.service=web", "--tail=200", "--prefix"]
    done = cli("release", "staging", cwd=folder, env=env)
    assert done.returncode == 2
    assert "env staging runs on Kubernetes; releases and promotions reach only envs on this host's engine" \
        in done.stderr


SERVERS = {"ENVPLANE_POSTGRES_URL": "ENVPLANE_TEST_POSTGRES_URL",
           "ENVPLANE_S3_ENDPOINT": "ENVPLANE_TEST_S3_ENDPOINT",
           "ENVPLANE_S3_ACCESS_KEY": "ENVPLANE_TEST_S3_ACCESS_KEY",
           "ENVPLANE_S3_SECRET_KEY": "ENVPLANE_TEST_S3_SECRET_KEY",
           "ENVPLANE_REDIS_URL": "ENVPLANE_TEST_REDIS_URL"}


def test_generated_credentials_reach_the_cluster_on_stdin_only_and_purge_drops_them(
        app: tuple[Path, str, dict[str, str]]) -> None:
    """The instance's own database, bucket key and Redis user (real servers) are made by
    `up`, handed to the cluster in the web-env Secret, and written nowhere else."""
    import os
    from urllib.parse import urlsplit

    folder, name, env = app
    servers = {ours: os.environ.get(theirs, "") for ours, theirs in SERVERS.items()}
    need("PostgreSQL, SeaweedFS and Redis", all(servers.values()), "run scripts/services/*.sh")
    env = {**env, **servers}
    spec = folder / "envplane.yaml"
    spec.write_text(spec.read_text().replace("    secrets: [API_KEY]\n", "    secrets: [API_KEY]\n"
                                             "    uses: [postgres, s3, redis]\n")
                    + "resources: {postgres: {}, s3: {}, redis: {}}\n")
    try:
        done = cli("up", "staging", cwd=folder, env=env)
        assert done.returncode == 0, done.stderr
        held = objects(env, f"{name}-staging")["Secret/web-env"]["data"]  # type: ignore[index]
        given = {k: base64.b64decode(v).decode() for k, v in held.items()}  # type: ignore[union-attr]
        generated = [given["DATABASE_URL"], given["REDIS_URL"], given["S3_SECRET_ACCESS_KEY"],
                     urlsplit(given["DATABASE_URL"]).password, urlsplit(given["REDIS_URL"]).password]
        assert all(generated) and f"/{name}_staging" in given["DATABASE_URL"]
        written = [p for p in (folder / ".envplane").rglob("*") if p.is_file()]
        for path in written:
            data = path.read_bytes()
            for value in generated:
                assert value and value.encode() not in data, f"a generated credential in {path}"
        for call in kubectl_calls(env):
            assert not any(str(v) in " ".join(call["argv"]) for v in generated)  # type: ignore[arg-type]
    finally:
        done = cli("down", "staging", "--purge", "--yes", "--no-backup", cwd=folder, env=env)
    assert done.returncode == 0, done.stderr
    assert f"{name}-staging" not in namespaces(env)


def test_a_purge_deletes_the_namespace_only_and_never_claims_a_backup_of_its_claims(
        app: tuple[Path, str, dict[str, str]], tmp_path: Path) -> None:
    """#9.2 on Kubernetes: the instance's data is its namespace's claims. A purge of staging
    deletes that namespace and nothing on this machine's disk; the final backup (#13) cannot
    hold claims, so it refuses rather than report a backup without them, and nothing goes."""
    folder, name, env = app
    local = tmp_path / "data" / name / "staging"  # a folder on this machine at staging's data path
    spec = folder / "envplane.yaml"
    spec.write_text(spec.read_text().replace(f"  staging:\n{KUBE}", f"  staging:\n{KUBE}    data_path: {local}\n"))
    local.mkdir(parents=True)
    (local / "notes.txt").write_text("not the cluster's\n")
    ns = f"{name}-staging"
    assert cli("up", "staging", cwd=folder, env=env).returncode == 0
    assert "PersistentVolumeClaim/db-data" in objects(env, ns)

    refused = cli("down", "staging", "--purge", "--yes", cwd=folder, env=env)
    assert refused.returncode == 1
    assert "PersistentVolumeClaims" in refused.stderr and "nothing was purged" in refused.stderr
    assert "--no-backup" in refused.stderr
    assert ns in namespaces(env) and "PersistentVolumeClaim/db-data" in objects(env, ns)

    done = cli("down", "staging", "--purge", "--yes", "--no-backup", cwd=folder, env=env)
    assert done.returncode == 0, done.stderr
    assert ns not in namespaces(env)
    deleted = [c["argv"] for c in kubectl_calls(env) if "delete" in c["argv"]]  # type: ignore[operator]
    assert [a[a.index("delete"):][:3] for a in deleted] == [["delete", "namespace", ns]]  # type: ignore[union-attr,index]
    assert (local / "notes.txt").read_text() == "not the cluster's\n"

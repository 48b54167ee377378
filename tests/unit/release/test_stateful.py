"""Stateful services: which ones hold data (each reason), and the two kinds of project
blue-green splits an instance into (colours without them, one project with them once)."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from envplane import actions
from envplane.compose.render import render
from envplane.errors import SpecError
from envplane.release.colours import (
    LABEL_COLOUR,
    coloured,
    pinned,
    published,
    shared_network,
    stateful_part,
)
from envplane.release.stateful import DATA_STORE_IMAGES, classify, is_data_store
from envplane.target import Target, resolve
from envplane.verify import Resource, analyse
from tests.unit.test_target import project

DATA = "/data/shop/production"
BASE = "/srv/shop"

# (Compose service, `stateful:` in envplane.yaml, expected verdict, words of the reason)
CASES: list[tuple[str, dict[str, Any], bool | None, bool, str]] = [
    ("official image", {"image": "postgres:15"}, None, True, "its image postgres:15 is a data store"),
    ("registry, namespace, digest", {"image": "docker.io/bitnami/postgresql:16@sha256:ab"}, None, True,
     "is a data store"),
    ("two-part name", {"image": "mcr.microsoft.com/mssql/server:2022-latest"}, None, True, "data store"),
    ("registry with a port", {"image": "registry:5000/team/redis"}, None, True, "data store"),
    ("a client of a store", {"image": "minio/mc"}, None, False, "no data-store image"),
    ("an exporter", {"image": "prometheuscommunity/postgres-exporter"}, None, False, "no data-store image"),
    ("named volume", {"image": "app", "volumes": ["pgdata:/var/lib/data"]}, None, True,
     "mounts the named volume pgdata at /var/lib/data"),
    ("named volume, long form", {"image": "app", "volumes": [{"type": "volume", "source": "v",
                                                               "target": "/v"}]}, None, True,
     "named volume v at /v"),
    ("named volume, read-only", {"image": "app", "volumes": ["assets:/assets:ro"]}, None, False, "no data"),
    ("long form, read-only", {"image": "app", "volumes": [{"type": "volume", "source": "v", "target": "/v",
                                                            "read_only": True}]}, None, False, "no data"),
    ("anonymous volume", {"image": "app", "volumes": ["/cache", {"type": "volume", "target": "/t"}]},
     None, False, "no data"),
    ("tmpfs", {"image": "app", "volumes": [{"type": "tmpfs", "target": "/tmp"}]}, None, False, "no data"),
    ("bind under the data path", {"image": "app", "volumes": [f"{DATA}/uploads:/uploads"]}, None, True,
     f"mounts {DATA}/uploads, under the data path, at /uploads"),
    ("relative bind under the data path", {"image": "app", "volumes": ["../../data/shop/production/x:/x"]},
     None, True, "under the data path"),
    ("bind of code", {"image": "app", "volumes": ["./www:/www"]}, None, False, "no data"),
    ("bind outside the data path", {"image": "app", "volumes": ["/srv/media:/media", "~/x:/x"]}, None, False,
     "no data"),
    ("bind beside the data path", {"image": "app", "volumes": [f"{DATA}-old:/old"]}, None, False, "no data"),
    ("said so", {"image": "app"}, True, True, "stateful: true in envplane.yaml"),
    ("said not, guessed so", {"image": "redis:7"}, False, False,
     "stateful: false in envplane.yaml (guessed stateful: its image redis:7 is a data store)"),
    ("said not, guessed not", {"image": "app"}, False, False, "stateful: false in envplane.yaml"),
]


@pytest.mark.parametrize(("service", "declared", "stateful", "reason"),
                         [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_each_reason_a_service_holds_data(service: dict[str, Any], declared: bool | None, stateful: bool,
                                          reason: str) -> None:
    verdict = classify(service, declared, DATA, BASE)
    assert verdict.stateful is stateful
    assert reason in verdict.reason


@pytest.mark.parametrize("name", sorted(DATA_STORE_IMAGES))
def test_every_listed_data_store_is_found_however_its_image_is_written(name: str) -> None:
    for image in (name, f"{name}:latest", f"Registry.example.com:5000/team/{name}:1.2@sha256:00"):
        assert is_data_store(image), image
    assert not is_data_store(f"{name}-exporter") and not is_data_store(f"{name}/{name}-ui")


COMPOSE = """\
services:
  web:
    image: shop-web
    ports: ["8080:8080"]
    depends_on:
      db: {condition: service_healthy}
      worker: {condition: service_started}
    links: ["db:database"]
  worker:
    image: shop-worker
    networks: [default, jobs]
  db:
    image: postgres:15
    ports: ["5432:5432"]
    volumes: ["pgdata:/var/lib/postgresql/data"]
    healthcheck: {test: ["CMD", "pg_isready"], interval: 1s}
    networks: [default, backup]
  backup:
    image: shop-backup
    volumes: ["${DATA_PATH}/dumps:/dumps"]
    depends_on: [db]
    networks: [backup]
volumes:
  pgdata: {}
networks:
  jobs: {}
  backup: {ipam: {config: [{subnet: 10.99.0.0/24}]}}
"""

SPEC = """\
app: shop
domain: example.com
compose: compose.yaml
services:
  web:
    public: 8080
    health: /health
"""


def shop(tmp_path: Path, spec: str = SPEC, compose: str = COMPOSE) -> Target:
    return resolve(project(tmp_path, spec, compose), "production")


def test_a_colour_has_no_stateful_service_and_needs_none(tmp_path: Path) -> None:
    base = shop(tmp_path)
    assert [(s.name, s.stateful) for s in base.services] == [
        ("web", False), ("worker", False), ("db", True), ("backup", True)]
    blue = coloured(base, "blue", {key: 41000 + i for i, key in enumerate(published(base))})
    data = render(blue, tmp_path)
    assert sorted(data["services"]) == ["web", "worker"]  # no copy of db or backup
    web = data["services"]["web"]
    # Compose would start db in the colour for these; the deploy starts it before instead.
    assert web["depends_on"] == {"worker": {"condition": "service_started"}}
    assert "links" not in web
    assert [p for p in published(base)] == [("web", 8080)]  # db keeps its own port, outside colours
    # The network db shares with the colour is joined, not created: the stateful project owns it.
    assert data["networks"]["default"] == {"external": True, "name": "shop_default-blue-shared"}
    assert data["networks"]["jobs"]["name"] == "shop_jobs-blue"  # a colour's own
    assert "volumes" not in data or "pgdata" not in data["volumes"]
    assert web["labels"][LABEL_COLOUR] == "blue"


def test_the_stateful_project_runs_each_stateful_service_once_on_each_colours_network(tmp_path: Path) -> None:
    base = shop(tmp_path)
    kept = stateful_part(base)
    data = render(kept, tmp_path)
    assert data["name"] == base.project == "shop"  # the instance's own project, as `up` names it
    assert sorted(data["services"]) == ["backup", "db"]
    db = data["services"]["db"]
    assert db["container_name"] == "shop-db" and LABEL_COLOUR not in db["labels"]
    assert db["ports"] == [{"target": 5432, "protocol": "tcp", "published": "5432"}]
    # Reached as `db` (and by the link's alias `database`) from either colour; `backup`
    # only from the stateful project, as in the user's file.
    assert db["networks"] == {"default-blue": {"aliases": ["database"]},
                              "default-green": {"aliases": ["database"]}, "backup": None}
    assert data["networks"]["default-blue"]["name"] == shared_network(base, "default", "blue")
    assert data["networks"]["default-green"]["name"] == "shop_default-green-shared"
    assert data["networks"]["backup"]["ipam"] == {"config": [{"subnet": "10.99.0.0/24"}]}
    assert data["networks"]["default-blue"]["labels"] == dict(base.labels)  # the instance's, no colour
    assert data["services"]["backup"]["depends_on"] == {"db": {"condition": "service_started",
                                                               "required": True}}
    assert list(data["volumes"]) == ["pgdata"]
    assert data["volumes"]["pgdata"]["name"] == "shop_pgdata"


def test_the_stateful_project_is_the_same_for_every_colour_and_release(tmp_path: Path) -> None:
    """What keeps Compose from recreating the database on a deploy: its file never changes."""
    base = shop(tmp_path)
    images = {"web": {"ref": "shop-web:v1.0.1", "built": True}, "db": {"ref": "postgres:15", "built": False}}
    first = render(stateful_part(pinned(base, "v1.0.1", images)), tmp_path)
    images["web"]["ref"] = "shop-web:v1.0.2"
    second = render(stateful_part(pinned(base, "v1.0.2", images)), tmp_path)
    assert first == second
    assert "ENVPLANE_RELEASE" not in first["services"]["db"]["environment"]


def test_without_stateful_services_colours_are_as_before(tmp_path: Path) -> None:
    compose = "services:\n  web:\n    image: shop-web\n    ports: ['8080:8080']\n"
    base = shop(tmp_path, compose=compose)
    data = render(coloured(base, "green", {("web", 8080): 41000}), tmp_path)
    assert data["networks"]["default"]["name"] == "shop_default-green"
    assert list(data["services"]) == ["web"]


def test_stateful_false_keeps_a_service_in_the_colours(tmp_path: Path) -> None:
    spec = SPEC + "  db:\n    stateful: false\n  worker:\n    stateful: true\n"
    base = shop(tmp_path, spec)
    assert {s.name: s.stateful for s in base.services} == {"web": False, "worker": True, "db": False,
                                                          "backup": True}
    assert "db" in render(coloured(base, "blue", {("web", 8080): 1, ("db", 5432): 2}), tmp_path)["services"]


def test_plan_says_which_services_are_coloured_and_why(tmp_path: Path) -> None:
    base = shop(tmp_path)
    services = {s["name"]: s for s in actions.target_dict(base)["services"]}
    assert (services["web"]["coloured"], services["web"]["stateful"]) == (True, False)
    assert (services["db"]["coloured"], services["db"]["stateful"]) == (False, True)
    assert services["db"]["why"] == "its image postgres:15 is a data store"
    assert "under the data path" in services["backup"]["why"]
    staging = {s["name"]: s for s in actions.target_dict(resolve(project(tmp_path, SPEC, COMPOSE),
                                                                  "staging"))["services"]}
    assert not staging["web"]["coloured"] and staging["db"]["stateful"]  # recreate: nothing coloured


def _problems(tmp_path: Path, spec: str = SPEC, compose: str = COMPOSE, env: str = "production"
              ) -> list[tuple[str, int | None, str, str, str]]:
    proj = project(tmp_path, spec, compose)
    try:
        actions.plan(proj, resolve(proj, env))
    except SpecError as exc:
        return [(p.file.name if p.file else "", p.line, p.field, p.message, p.hint) for p in exc.problems]
    return []


def test_a_public_stateful_service_cannot_be_blue_green(tmp_path: Path) -> None:
    compose = "services:\n  web:\n    image: shop-web\n    volumes: ['uploads:/uploads']\nvolumes:\n  uploads: {}\n"
    [(file, line, field, message, hint)] = _problems(tmp_path, compose=compose)
    assert (file, line, field) == ("envplane.yaml", 6, "services.web.public")
    assert message.startswith("service web is public and stateful (mounts the named volume uploads at /uploads)")
    assert "`stateful: false` under services.web" in hint
    assert _problems(tmp_path, compose=compose, env="staging") == []  # recreate: one copy at a time
    assert _problems(tmp_path, SPEC + "    stateful: false\n", compose) == []


def test_what_cannot_be_split_is_an_error_at_its_line(tmp_path: Path) -> None:
    compose = COMPOSE.replace("    depends_on: [db]\n", "    depends_on: [db, worker]\n").replace(
        "    image: shop-worker\n", "    image: shop-worker\n    volumes_from: [db]\n")
    problems = _problems(tmp_path, compose=compose)
    assert [p[:3] for p in problems] == [("compose.yaml", 11, "services.worker.volumes_from"),
                                         ("compose.yaml", 22, "services.backup.depends_on")]
    assert problems[0][3].startswith("worker shares the volumes from of stateful service db")
    assert problems[1][3] == "stateful service backup needs worker, which blue-green runs per colour"


@pytest.mark.parametrize("value", ["yes", 1, "[true]"])
def test_stateful_must_be_true_or_false(tmp_path: Path, value: object) -> None:
    with pytest.raises(SpecError) as raised:
        project(tmp_path, SPEC + f"    stateful: {value}\n")
    assert [(p.file.name if p.file else "", p.line, p.field, p.message) for p in raised.value.problems] == [
        ("envplane.yaml", 8, "services.web.stateful", "must be true or false")]


def _containers(data: dict[str, Any]) -> list[Resource]:
    """The containers a rendered project runs, as `envplane verify` observes them."""
    found = []
    for name, svc in data["services"].items():
        nets = svc.get("networks") or {"default": None}
        vols = [v.split(":")[0] for v in svc.get("volumes") or [] if isinstance(v, str)]
        found.append(Resource(
            kind="container", name=svc.get("container_name", name), labels=svc["labels"], state="running",
            ports=tuple(f"{p['published']}/tcp" for p in svc.get("ports") or []),
            networks=tuple(data["networks"][k]["name"] for k in nets),
            volumes=tuple(data["volumes"][v]["name"] for v in vols if v in data.get("volumes", {}))))
    return found


def _instance(target: Target, tmp_path: Path, port: int) -> list[Resource]:
    colours = [coloured(target, c, {("web", 8080): port + i}) for i, c in enumerate(("blue", "green"))]
    return [r for t in (stateful_part(target), *colours) for r in _containers(render(t, tmp_path))]


def test_verify_accepts_an_instance_s_own_shared_networks_and_names_another_s(tmp_path: Path) -> None:
    production = shop(tmp_path)
    staging = resolve(project(tmp_path, SPEC, COMPOSE), "staging")
    both = _instance(production, tmp_path, 41000) + _instance(staging, tmp_path, 42000)
    report = analyse(both)
    assert report.ok and report.instances == {"shop/production/production", "shop/staging/staging"}
    staging_db = next(r for r in both if r.name == "shop-db-staging")
    intruder = replace(staging_db, networks=(*staging_db.networks, "shop_default-blue-shared"))
    assert [(f.kind, f.subject) for f in analyse([*both, intruder]).findings] == [
        ("shared network", "shop_default-blue-shared")]

from __future__ import annotations

from pathlib import Path

from envplane.compose.merge import merge
from tests.unit.compose.helpers import doc

BASE = """\
services:
  web:
    image: nginx
    command: ["a", "b"]
    entrypoint: /start
    ports: ["80:80", "443:443"]
    expose: ["1", "2"]
    dns: [1.1.1.1]
    environment: [A=1, B=2, UNSET]
    labels: {x: "1"}
    volumes: ["data:/data", "./a:/a:ro"]
    extra_hosts: ["h:1.2.3.4"]
    secrets: [s1, s2]
    networks: [front]
    depends_on: [db]
    build:
      context: .
      args: [X=1]
    healthcheck: {test: ["CMD", "a"], interval: 5s}
    logging: {driver: json-file, options: {max-size: 1m}}
    x-custom: {a: 1}
  db:
    image: postgres
x-top: {a: 1}
"""

OVERRIDE = """\
services:
  web:
    command: c
    ports: ["80:80", "8080:80"]
    expose: ["2", "3"]
    dns: [1.1.1.1, 8.8.8.8]
    environment: {B: 3, C: "4"}
    labels: [y=2]
    volumes: ["other:/data", {type: bind, source: ./b, target: /b}]
    extra_hosts: ["h:1.2.3.4", "i:5.6.7.8"]
    secrets: [{source: s1, target: /run/secrets/s1, mode: 0400}]
    networks: {back: {aliases: [w]}}
    depends_on: {cache: {condition: service_healthy}}
    build: {args: {Y: "2"}, dockerfile: Dockerfile.dev}
    healthcheck: {test: ["CMD", "b"]}
    logging: {options: {max-file: "3"}}
    x-custom: {b: 2}
  cache:
    image: redis
x-top: {b: 2}
"""

THIRD = """\
services:
  web:
    entrypoint: [/bin/sh, -c]
    ports: ["9000:9000"]
    environment: [C=5, D]
    logging: {driver: syslog}
"""


def test_two_files_merge_by_compose_rules() -> None:
    model = merge([doc(BASE, "a.yaml"), doc(OVERRIDE, "b.yaml")])
    web = model.data["services"]["web"]
    assert web == {
        "image": "nginx",
        "command": "c",
        "entrypoint": "/start",
        "ports": ["80:80", "443:443", "8080:80"],
        "expose": ["1", "2", "3"],
        "dns": ["1.1.1.1", "8.8.8.8"],
        "environment": {"A": "1", "B": "3", "UNSET": None, "C": "4"},
        "labels": {"x": "1", "y": "2"},
        "volumes": ["other:/data", "./a:/a:ro", {"type": "bind", "source": "./b", "target": "/b"}],
        "extra_hosts": ["h:1.2.3.4", "i:5.6.7.8"],
        "secrets": [{"source": "s1", "target": "/run/secrets/s1", "mode": 400}, "s2"],
        "networks": {"front": None, "back": {"aliases": ["w"]}},
        "depends_on": {
            "db": {"condition": "service_started", "required": True},
            "cache": {"condition": "service_healthy"},
        },
        "build": {"context": ".", "args": {"X": "1", "Y": "2"}, "dockerfile": "Dockerfile.dev"},
        "healthcheck": {"test": ["CMD", "b"], "interval": "5s"},
        "logging": {"driver": "json-file", "options": {"max-size": "1m", "max-file": "3"}},
        "x-custom": {"a": 1, "b": 2},
    }
    assert set(model.data["services"]) == {"web", "db", "cache"}
    assert model.data["x-top"] == {"a": 1, "b": 2}
    assert model.files == (Path("a.yaml"), Path("b.yaml"))


def test_three_files_merge_in_order() -> None:
    model = merge([doc(BASE, "a.yaml"), doc(OVERRIDE, "b.yaml"), doc(THIRD, "c.yaml")])
    web = model.data["services"]["web"]
    assert web["ports"] == ["80:80", "443:443", "8080:80", "9000:9000"]
    assert web["environment"] == {"A": "1", "B": "3", "UNSET": None, "C": "5", "D": None}
    assert web["command"] == "c"
    assert web["entrypoint"] == ["/bin/sh", "-c"]
    # another driver: the options of the old one no longer apply
    assert web["logging"] == {"driver": "syslog"}


def test_one_file_is_normalised() -> None:
    model = merge(
        [
            doc(
                "services:\n  web:\n    image: x\n    environment: [A=1, B=]\n"
                "    labels: {n: 1, t: true}\n    networks: [a]\n"
            )
        ]
    )
    assert model.data["services"]["web"] == {
        "image": "x",
        "environment": {"A": "1", "B": ""},
        "labels": {"n": "1", "t": "true"},
        "networks": {"a": None},
    }


def test_string_build_merges_with_mapping_build() -> None:
    model = merge(
        [doc("services:\n  w:\n    build: ./app\n"), doc("services:\n  w:\n    build: {target: dev}\n")]
    )
    assert model.data["services"]["w"]["build"] == {"context": "./app", "target": "dev"}


def test_null_override_keeps_the_base() -> None:
    model = merge(
        [doc("services:\n  w:\n    image: x\n    ports: ['80']\n"), doc("services:\n  w:\n    ports:\n")]
    )
    assert model.data["services"]["w"]["ports"] == ["80"]


def test_unknown_keys_pass_through() -> None:
    model = merge([doc("version: '3'\nservices:\n  w:\n    image: x\n    future_key: {a: [1]}\nx-any: 1\n")])
    assert model.data == {
        "version": "3",
        "services": {"w": {"image": "x", "future_key": {"a": [1]}}},
        "x-any": 1,
    }


def test_origin_names_the_file_and_line_that_wrote_each_field() -> None:
    model = merge([doc(BASE, "a.yaml"), doc(OVERRIDE, "b.yaml"), doc(THIRD, "c.yaml")])
    assert model.where(("services", "web", "image")) == (Path("a.yaml"), 3)
    assert model.where(("services", "web", "command")) == (Path("b.yaml"), 3)
    assert model.where(("services", "web", "ports", 0)) == (Path("b.yaml"), 4)
    assert model.where(("services", "web", "ports", 1)) == (Path("a.yaml"), 6)
    assert model.where(("services", "web", "ports", 3)) == (Path("c.yaml"), 4)
    assert model.where(("services", "web", "environment", "A")) == (Path("a.yaml"), 9)
    assert model.where(("services", "web", "environment", "C")) == (Path("c.yaml"), 5)
    assert model.where(("services", "db")) == (Path("a.yaml"), 22)
    problem = model.problem(("services", "web", "ports", 2), "bad", "fix it")
    assert problem.render() == "services.web.ports[2]: bad (b.yaml:4)"
    assert problem.hint == "fix it"

from __future__ import annotations

from pathlib import Path

import pytest

from envplane.compose.load import ExtendsSource, build_model, read_compose_files
from envplane.compose.merge import merge
from envplane.compose.profiles import select_profiles
from envplane.errors import SpecError
from tests.unit.compose.helpers import doc

SAME_FILE = """\
services:
  base:
    image: app
    environment: [A=1, B=2]
    ports: ["80"]
    command: serve
  web:
    extends: base
    environment: {B: "3"}
    ports: ["81"]
  worker:
    extends: {service: web}
    command: work
"""


def test_extends_in_the_same_file() -> None:
    model, _ = build_model([doc(SAME_FILE)], {}, ())
    services = model.data["services"]
    assert services["web"] == {
        "image": "app",
        "environment": {"A": "1", "B": "3"},
        "ports": ["80", "81"],
        "command": "serve",
    }
    assert services["worker"] == {**services["web"], "command": "work"}
    # an inherited field points at the `extends:` line
    assert model.where(("services", "web", "image")) == (Path("compose.yaml"), 8)


def test_extends_from_another_file(tmp_path: Path) -> None:
    (tmp_path / "common").mkdir()
    (tmp_path / "common" / "base.yaml").write_text(
        "services:\n  app:\n    build: ./src\n    image: ${IMG:-base}\n"
        "    volumes: ['./data:/data', 'named:/n']\n    env_file: ./app.env\n",
        encoding="utf-8",
    )
    (tmp_path / "compose.yaml").write_text(
        "services:\n  web:\n    extends: {service: app, file: common/base.yaml}\n    ports: ['80']\n",
        encoding="utf-8",
    )
    docs = read_compose_files([tmp_path / "compose.yaml"])
    assert [type(d) for d in docs] == [type(docs[0]), ExtendsSource]
    model, _ = build_model(docs, {"IMG": "mine"}, ())
    assert model.data["services"] == {
        "web": {
            "build": "common/src",
            "image": "mine",
            "volumes": ["common/data:/data", "named:/n"],
            "env_file": "common/app.env",
            "ports": ["80"],
        }
    }


def test_extends_file_is_read_once_even_when_chained(tmp_path: Path) -> None:
    (tmp_path / "a.yaml").write_text(
        "services:\n  s:\n    extends: {service: t, file: b.yaml}\n", encoding="utf-8"
    )
    (tmp_path / "b.yaml").write_text(
        "services:\n  t:\n    extends: {service: u, file: a.yaml}\n  u2:\n    image: x\n", encoding="utf-8"
    )
    (tmp_path / "main.yaml").write_text(
        "services:\n  m:\n    extends: {service: s, file: a.yaml}\n", encoding="utf-8"
    )
    docs = read_compose_files([tmp_path / "main.yaml"])
    assert [d.file.name for d in docs] == ["main.yaml", "a.yaml", "b.yaml"]
    with pytest.raises(SpecError) as err:
        build_model(docs, {}, ())
    assert err.value.problems[0].message == f"extends an unknown service 'u' in {tmp_path / 'a.yaml'}"


@pytest.mark.parametrize(
    ("text", "message", "line"),
    [
        ("services:\n  a:\n    extends: a\n", "extends cycle: a -> a", 3),
        (
            "services:\n  a:\n    extends: b\n  b:\n    extends: {service: c}\n  c:\n    extends: a\n",
            "extends cycle: a -> b -> c -> a",
            3,
        ),
        ("services:\n  a:\n    extends: nope\n", "extends an unknown service 'nope' in compose.yaml", 3),
        ("services:\n  a:\n    extends: {file: x.yml}\n", "must name a service", 3),
    ],
)
def test_extends_errors(text: str, message: str, line: int) -> None:
    with pytest.raises(SpecError) as err:
        build_model([doc(text)], {}, ())
    first = err.value.problems[0]
    assert (first.message, first.line, first.field) == (message, line, "services.a.extends")


PROFILES = """\
services:
  web:
    image: web
    depends_on:
      db: {condition: service_started}
      tools: {condition: service_started, required: false}
  db:
    image: pg
  debug:
    image: busybox
    profiles: [debug]
  tools:
    image: tools
    profiles: [tools, debug]
"""


@pytest.mark.parametrize(
    ("active", "kept"),
    [
        ((), ["web", "db"]),
        (("debug",), ["web", "db", "debug", "tools"]),
        (("tools",), ["web", "db", "tools"]),
        (("*",), ["web", "db", "debug", "tools"]),
        (("other",), ["web", "db"]),
    ],
)
def test_profiles_select_services(active: tuple[str, ...], kept: list[str]) -> None:
    model = select_profiles(merge([doc(PROFILES)]), active)
    assert list(model.data["services"]) == kept
    # a dependency marked `required: false` stays, as Compose keeps it
    assert list(model.data["services"]["web"]["depends_on"]) == ["db", "tools"]


def test_enabled_service_depending_on_a_disabled_one_is_an_error() -> None:
    text = PROFILES.replace("  db:\n    image: pg\n", "  db:\n    image: pg\n    profiles: [data]\n")
    with pytest.raises(SpecError) as err:
        select_profiles(merge([doc(text)]), ())
    [problem] = err.value.problems
    assert problem.render() == (
        "services.web.depends_on.db: service web depends on service db, "
        "which no active profile enables (compose.yaml:5)"
    )
    assert problem.hint == "activate a profile of db (data), or set `required: false` on it"


def test_depending_on_an_undefined_service_is_an_error() -> None:
    with pytest.raises(SpecError) as err:
        build_model([doc("services:\n  web:\n    image: x\n    depends_on: [ghost]\n")], {}, ())
    assert (
        str(err.value)
        == "services.web.depends_on.ghost: service web depends on undefined service ghost (compose.yaml:4)"
    )

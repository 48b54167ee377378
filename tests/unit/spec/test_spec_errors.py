"""A bad spec gives one message per problem with file, line and field, and exit code 2."""

from __future__ import annotations

from pathlib import Path

import pytest

from envplane.errors import SpecError
from envplane.spec.load import load_project

COMPOSE = """\
services:
  web:
    image: nginx
    ports: ["8080:80"]
  api:
    image: python
    ports: ["8000:8000"]
"""


def write(tmp_path: Path, spec: str, compose: str = COMPOSE) -> Path:
    (tmp_path / "compose.yaml").write_text(compose)
    path = tmp_path / "envplane.yaml"
    path.write_text(spec)
    return path


def problems(tmp_path: Path, spec: str, compose: str = COMPOSE) -> list[str]:
    path = write(tmp_path, spec, compose)
    with pytest.raises(SpecError) as info:
        load_project(path, {})
    assert info.value.exit_code == 2
    return [p.render().replace(str(tmp_path) + "/", "") for p in info.value.problems]


CASES = {
    "unknown key": (
        "app: shop\ndomain: example.com\ncompose: compose.yaml\nservics: {}\n",
        ["servics: unknown key (envplane.yaml:4)"],
    ),
    "unknown nested key with suggestion": (
        "app: shop\ndomain: example.com\ncompose: compose.yaml\n"
        "services:\n  web:\n    helth: /health\n",
        ["services.web.helth: unknown key (envplane.yaml:6)"],
    ),
    "wrong type": (
        "app: shop\ndomain: example.com\ncompose: compose.yaml\n"
        "environments:\n  staging:\n    port_offset: lots\n",
        ["environments.staging.port_offset: must be an integer (envplane.yaml:6)"],
    ),
    "unknown env": (
        "app: shop\ndomain: example.com\ncompose: compose.yaml\n"
        "environments:\n  qa:\n    domain: qa.example.com\n",
        ["environments.qa: unknown environment 'qa' (envplane.yaml:5)"],
    ),
    "unknown base env": (
        "app: shop\ndomain: example.com\ncompose: compose.yaml\n"
        "environments:\n  eu:\n    extends: prod\n",
        ["environments.eu.extends: unknown environment 'prod' (envplane.yaml:6)"],
    ),
    "port out of range": (
        "app: shop\ndomain: example.com\ncompose: compose.yaml\n"
        "services:\n  web:\n    public: 70000\n",
        ["services.web.public.port: input should be less than or equal to 65535 (envplane.yaml:6)"],
    ),
    "missing required keys": (
        "app: shop\n",
        ["domain: is required (envplane.yaml:1)", "compose: is required (envplane.yaml:1)"],
    ),
    "bad app name": (
        "app: Shop_1\ndomain: example.com\ncompose: compose.yaml\n",
        ["app: must be 2-40 characters of a-z, 0-9 and '-', starting with a letter (envplane.yaml:1)"],
    ),
    "missing compose file": (
        "app: shop\ndomain: example.com\ncompose:\n  - compose.yaml\n  - missing.yaml\n",
        None,  # checked below: names the file and the line
    ),
    "yaml syntax error": (
        "app: shop\ndomain: [example.com\ncompose: compose.yaml\n",
        None,
    ),
    "empty file": ("", ["the file is empty (envplane.yaml)"]),
}


@pytest.mark.parametrize("name", [k for k, v in CASES.items() if v[1] is not None])
def test_spec_error_messages(tmp_path: Path, name: str) -> None:
    spec, expected = CASES[name]
    assert problems(tmp_path, spec) == expected


def test_missing_compose_file_names_line_and_path(tmp_path: Path) -> None:
    spec, _ = CASES["missing compose file"]
    [message] = problems(tmp_path, spec)
    assert message.startswith("compose[1]: Compose file 'missing.yaml' not found")
    assert message.endswith("(envplane.yaml:5)")


def test_yaml_syntax_error_names_line(tmp_path: Path) -> None:
    spec, _ = CASES["yaml syntax error"]
    [message] = problems(tmp_path, spec)
    assert message.startswith("YAML syntax error")
    assert "envplane.yaml:3" in message


def test_several_problems_are_reported_together(tmp_path: Path) -> None:
    spec = (
        "app: shop\ndomain: example.com\ncompose: compose.yaml\n"
        "services:\n  web:\n    public: 0\n    helth: /\n"
        "environments:\n  staging:\n    port_stride: many\n"
    )
    found = problems(tmp_path, spec)
    assert len(found) == 3


def test_unknown_key_hint_suggests_the_right_key(tmp_path: Path) -> None:
    path = write(tmp_path, "app: shop\ndomain: example.com\ncompose: compose.yaml\n"
                 "services:\n  web:\n    helth: /health\n")
    with pytest.raises(SpecError) as info:
        load_project(path, {})
    assert info.value.problems[0].hint == "did you mean `health`?"


def test_smallest_spec_is_three_lines(tmp_path: Path) -> None:
    path = write(tmp_path, "app: shop\ndomain: example.com\ncompose: compose.yaml\n")
    project = load_project(path, {})
    assert set(project.envs) == {"local", "docker", "ci", "test", "staging", "production", "dr"}

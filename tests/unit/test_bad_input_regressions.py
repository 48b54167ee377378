"""#9.21: every crash the fuzz tests found, as a named case.

Each input used to end in an internal error (a Python exception and exit 1), an error
with no file or field, or went on to Compose (or `init`) unchecked; now it is refused
with file, line and field (exit 2). The cases go through the same functions as
`plan`, `render` and `envs` (tests/fuzz_kit.py).
"""

from __future__ import annotations

from pathlib import Path
from typing import NamedTuple

import pytest

from tests.fuzz_kit import outcome

SPEC = "app: shop\ndomain: example.com\ncompose: compose.yaml\n"
WEB = "services:\n  web:\n    image: nginx\n"


class Case(NamedTuple):
    spec: str
    compose: str
    file: str  # the file the error names
    line: int | None
    field: str
    message: str  # the start of the message


CASES = {
    # target.py:_scoped read `.get` of whatever `volumes:` / `networks:` held
    "top-level volumes is a string": Case(SPEC, WEB + "volumes: data\n", "compose.yaml", 4, "volumes",
                                          "must be a mapping"),
    "one volume is a string": Case(SPEC, WEB + "volumes:\n  data: local\n", "compose.yaml", 5, "volumes.data",
                                   "must be a mapping or empty"),
    "one volume is a number": Case(SPEC, WEB + "volumes:\n  data: 3\n", "compose.yaml", 5, "volumes.data",
                                   "must be a mapping or empty"),
    "one network is a list": Case(SPEC, WEB + "networks:\n  front: [a]\n", "compose.yaml", 5, "networks.front",
                                  "must be a mapping or empty"),
    # render.py:build_section iterated a number
    "build is a number": Case(SPEC, "services:\n  web:\n    build: 1.5\n", "compose.yaml", 3,
                              "services.web.build", "must be a string or a mapping"),
    "build is true": Case(SPEC, "services:\n  web:\n    build: true\n", "compose.yaml", 3,
                          "services.web.build", "must be a string or a mapping"),
    "build is a list": Case(SPEC, "services:\n  web:\n    build: [a]\n", "compose.yaml", 3,
                            "services.web.build", "must be a string or a mapping"),
    # render.py:_abs called .startswith on what env_file held
    "an env_file entry is null": Case(SPEC, WEB + "    env_file: [null]\n", "compose.yaml", 4,
                                      "services.web.env_file[0]", "must be a string or a mapping"),
    "env_file is true": Case(SPEC, WEB + "    env_file: true\n", "compose.yaml", 4,
                             "services.web.env_file", "must be a string or a list"),
    "an env_file mapping without path": Case(SPEC, WEB + "    env_file: [{required: false}]\n", "compose.yaml",
                                             4, "services.web.env_file[0].path", "is required"),
    "a volume mapping with a list source": Case(SPEC, WEB + "    volumes: [{type: bind, source: [a], target: /x}]\n",
                                                "compose.yaml", 4, "services.web.volumes[0].source",
                                                "must be a string"),
    "a healthcheck test of numbers": Case(SPEC, WEB + "    ports: ['80:80']\n    healthcheck: {test: [1, 2]}\n",
                                          "compose.yaml", 5, "services.web.healthcheck.test[0]", "must be a string"),
    "labels hold a mapping": Case(SPEC, WEB + "    labels: {a: {b: c}}\n", "compose.yaml", 4,
                                  "services.web.labels.a", "must be a string, a number or a boolean"),
    # spec/load.py:_compose_path asked the file system about an impossible name
    "a compose path with a NUL byte": Case(SPEC.replace("compose.yaml", '"a\\0b.yaml"'), WEB, "envplane.yaml", 3,
                                           "compose", "Compose file 'a\\x00b.yaml' cannot be a path"),
    "a compose path too long for the file system": Case(SPEC.replace("compose.yaml", "a" * 300), WEB,
                                                        "envplane.yaml", 3, "compose", "Compose file 'aaaa"),
    "an env's overlay that is not there": Case(SPEC + "environments:\n  staging:\n    compose: [nope.yaml]\n",
                                               WEB, "envplane.yaml", 6, "environments.staging.compose[0]",
                                               "Compose file 'nope.yaml' not found"),
    "an extends file that is not there": Case(SPEC, WEB + "  api:\n    extends: {service: web, file: nope.yaml}\n",
                                              "compose.yaml", 5, "services.api.extends.file", "extends file "),
    # names.fill raised ValueError / AttributeError from str.format
    "a data path template with one brace": Case(SPEC + "environments:\n  staging:\n    data_path: /data/{\n",
                                                WEB, "envplane.yaml", 6, "environments.staging.data_path",
                                                "not a valid template"),
    "a domain template with a positional field": Case(SPEC + "environments:\n  staging:\n    domain: '{0}.x'\n",
                                                      WEB, "envplane.yaml", 6, "environments.staging.domain",
                                                      "unknown template field {0}"),
    "a template field with an attribute": Case(SPEC + "environments:\n  staging:\n    secrets_env: '{app.x}'\n",
                                               WEB, "envplane.yaml", 6, "environments.staging.secrets_env",
                                               "unknown template field {app.x}"),
    # a UsageError without file or field
    "{pr} in an env with one instance": Case(SPEC + "environments:\n  staging:\n    data_path: /d/{pr}\n",
                                             WEB, "envplane.yaml", 6, "environments.staging.data_path",
                                             "template field {pr} has no value here (env staging)"),
    # an empty key was a problem with no field
    "an empty key": Case(SPEC + "'': 1\n", WEB, "envplane.yaml", 4, '""', "unknown key"),
}


@pytest.mark.parametrize("case", list(CASES.values()), ids=list(CASES))
def test_bad_input_is_refused_with_file_line_and_field(case: Case, tmp_path: Path) -> None:
    result = outcome(tmp_path, case.spec, case.compose, "staging", None, None)
    assert result.error is not None, "accepted"
    problem = result.error.problems[0]
    assert problem.file is not None and problem.file.name == case.file, problem.render()
    assert (problem.line, problem.field) == (case.line, case.field), problem.render()
    assert problem.message.startswith(case.message), problem.render()


@pytest.mark.parametrize("value", ["²", "9" * 5000, "٣"])
def test_a_pr_number_from_the_shell_that_is_no_number_asks_for_one(value: str, tmp_path: Path) -> None:
    """PR_NUMBER=² passed str.isdigit and crashed int(); 5000 digits crashed int() too."""
    (tmp_path / "envplane.yaml").write_text(SPEC)
    (tmp_path / "compose.yaml").write_text(WEB)
    from envplane import actions
    from envplane.errors import UsageError

    with pytest.raises(UsageError, match="has one instance per pull request: say which"):
        actions.load_checked(tmp_path / "envplane.yaml", {"PR_NUMBER": value}, "test")



@pytest.mark.parametrize("key", ["volumes", "ports"])
def test_an_empty_list_key_of_a_service_is_refused_as_compose_refuses_it(key: str, tmp_path: Path) -> None:
    """`volumes:` with nothing under it (null) passed the checks and crashed render."""
    result = outcome(tmp_path, SPEC, WEB + f"    {key}:\n", "staging", None, None)
    assert result.error is not None
    assert [p.render().split(" (")[0] for p in result.error.problems] == [f"services.web.{key}: must be a list"]

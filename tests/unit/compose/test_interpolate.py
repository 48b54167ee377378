from __future__ import annotations

from pathlib import Path

import pytest

from envplane.compose.interpolate import interpolate
from envplane.errors import SpecError
from tests.unit.compose.helpers import doc

LOOKUP = {"SET": "value", "EMPTY": "", "B": "bee"}

CASES = [
    ("$SET", "value"),
    ("${SET}", "value"),
    ("pre-${SET}-post", "pre-value-post"),
    ("$SET/$SET", "value/value"),
    ("${UNSET:-default}", "default"),
    ("${EMPTY:-default}", "default"),
    ("${EMPTY-default}", ""),
    ("${UNSET-default}", "default"),
    ("${SET:-default}", "value"),
    ("${SET:+alt}", "alt"),
    ("${EMPTY:+alt}", ""),
    ("${EMPTY+alt}", "alt"),
    ("${UNSET+alt}", ""),
    ("${UNSET:+alt}", ""),
    ("${SET:?err}", "value"),
    ("${EMPTY?err}", ""),
    ("${A:-${B:-x}}", "bee"),
    ("${A:-${C:-x}}", "x"),
    ("${A:-${C:-${SET}}}", "value"),
    ("$$SET", "$SET"),
    ("$${SET}", "${SET}"),
    ("a $ b", "a $ b"),
    ("cost: 5$", "cost: 5$"),
    ("${UNSET:-a b:c}", "a b:c"),
    ("${UNSET:-$$}", "$"),
]


@pytest.mark.parametrize(("text", "expected"), CASES)
def test_every_form(text: str, expected: str) -> None:
    source = doc(f"x: '{text}'\n")
    done, warnings = interpolate(source, LOOKUP)
    assert done.data == {"x": expected}
    assert warnings == []


def test_unset_without_default_is_empty_and_warned_once() -> None:
    source = doc("services:\n  web:\n    image: 'app:${TAG}'\n    command: $TAG\n")
    done, warnings = interpolate(source, {})
    assert done.data == {"services": {"web": {"image": "app:", "command": ""}}}
    assert warnings == ['The "TAG" variable is not set. Defaulting to a blank string.']


def test_keys_are_not_interpolated_and_lines_are_kept() -> None:
    source = doc("services:\n  ${NAME}:\n    image: $SET\n    ports: [80]\n")
    done, _ = interpolate(source, LOOKUP)
    assert done.data == {"services": {"${NAME}": {"image": "value", "ports": [80]}}}
    assert done.lines == source.lines
    assert done.file == Path("compose.yaml")


def test_required_unset_names_every_occurrence() -> None:
    source = doc(
        """\
        services:
          web:
            image: ${IMAGE:?set the image}
            environment:
              - URL=${URL?}
              - BOTH=${A?one}-${B2:?two}
        """
    )
    with pytest.raises(SpecError) as err:
        interpolate(source, {"EMPTY": ""})
    got = [(p.message, str(p.file), p.line, p.field, p.hint) for p in err.value.problems]
    assert got == [
        (
            "required variable IMAGE is not set: set the image",
            "compose.yaml",
            3,
            "services.web.image",
            "set IMAGE in the environment or in .env",
        ),
        (
            "required variable URL is not set",
            "compose.yaml",
            5,
            "services.web.environment[0]",
            "set URL in the environment or in .env",
        ),
        (
            "required variable A is not set: one",
            "compose.yaml",
            6,
            "services.web.environment[1]",
            "set A in the environment or in .env",
        ),
        (
            "required variable B2 is not set: two",
            "compose.yaml",
            6,
            "services.web.environment[1]",
            "set B2 in the environment or in .env",
        ),
    ]


def test_colon_question_rejects_empty() -> None:
    with pytest.raises(SpecError) as err:
        interpolate(doc("x: ${EMPTY:?needed}\n"), {"EMPTY": ""})
    assert str(err.value) == "x: required variable EMPTY is empty: needed (compose.yaml:1)"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("${", "invalid interpolation format for '${': missing '}'"),
        ("${VAR", "invalid interpolation format for '${VAR': missing '}'"),
        ("${}", "invalid interpolation format: ${}"),
        ("${1A}", "invalid interpolation format: ${1A}"),
        ("${VAR:x}", "invalid interpolation format: ${VAR:x}"),
    ],
)
def test_invalid_syntax_names_file_and_line(text: str, message: str) -> None:
    source = doc(f"services:\n  web:\n    image: '{text}'\n")
    with pytest.raises(SpecError) as err:
        interpolate(source, LOOKUP)
    [problem] = err.value.problems
    assert (problem.message, problem.line, problem.field) == (message, 3, "services.web.image")


def test_all_problems_of_a_file_are_raised_together() -> None:
    source = doc("a: ${X?}\nb: ${\nc: ok\n")
    with pytest.raises(SpecError) as err:
        interpolate(source, {})
    assert [(p.field, p.line) for p in err.value.problems] == [("a", 1), ("b", 2)]


def test_non_strings_pass_untouched() -> None:
    source = doc("a: 1\nb: true\nc: null\nd: [1.5, '$SET']\n")
    done, _ = interpolate(source, LOOKUP)
    assert done.data == {"a": 1, "b": True, "c": None, "d": [1.5, "value"]}

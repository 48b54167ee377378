from __future__ import annotations

from pathlib import Path

import pytest

from envplane.compose.dotenv import parse_dotenv, read_dotenv
from envplane.errors import SpecError

FILE = Path(".env")

CASES = [
    ("A=1", {"A": "1"}),
    ("# comment\n\nA=1\n   # indented comment", {"A": "1"}),
    ("export A=1", {"A": "1"}),
    ("A: colon", {"A": "colon"}),
    ("A=plain # comment", {"A": "plain"}),
    ("A=val#notcomment", {"A": "val#notcomment"}),
    ("A=  spaced value  ", {"A": "spaced value"}),
    ("A=a b   c", {"A": "a b   c"}),
    ("A=", {"A": ""}),
    ("A=''", {"A": ""}),
    ('A=""', {"A": ""}),
    ("A='sq \\n ${B} $B' # c", {"A": "sq \\n ${B} $B"}),
    ('A="dq \\n \\t \\\\ \\" \\$B \\x"', {"A": 'dq \n \t \\ " $B \\x'}),
    ('A="has # hash"', {"A": "has # hash"}),
    ('A="multi\nline"\nB=2', {"A": "multi\nline", "B": "2"}),
    ('A="a" trailing junk', {"A": "a"}),
    ("A=1\nB=${A}-${NOPE:-def}", {"A": "1", "B": "1-def"}),
    ('A=1\nB="${A}"', {"A": "1", "B": "1"}),
    ("A=$$", {"A": "$"}),
    ("A=1\nA=2", {"A": "2"}),
    ("A.B-C_D=1", {"A.B-C_D": "1"}),
    ("A=1\r\nB=2\r\n", {"A": "1", "B": "2"}),
    ("LOOKED\nMISSING", {"LOOKED": "from-env"}),
    ("P=file\nQ=${P}", {"P": "file", "Q": "env-wins"}),
]


@pytest.mark.parametrize(("text", "expected"), CASES)
def test_dotenv_rules(text: str, expected: dict[str, str]) -> None:
    lookup = {"LOOKED": "from-env", "P": "env-wins"}
    assert parse_dotenv(text, FILE, lookup) == expected


@pytest.mark.parametrize(
    ("text", "line", "message"),
    [
        ("A=1\nBAD KEY=1", 2, "unexpected character ' ' in variable name 'BAD KEY'"),
        ("A=1\n\nK'=1", 3, 'unexpected character "\'" in variable name "K\'"'),
        ('A=1\nB="unterminated\nC=3', 2, 'unterminated quoted value "unterminated'),
        ("A=1\nB='open", 2, "unterminated quoted value 'open"),
        ("A=${NOPE:?need it}", 1, "required variable NOPE is not set: need it"),
        ("A=${", 1, "invalid interpolation format for '${': missing '}'"),
    ],
)
def test_errors_name_file_and_line(text: str, line: int, message: str) -> None:
    with pytest.raises(SpecError) as err:
        parse_dotenv(text, FILE)
    [problem] = err.value.problems
    assert (problem.file, problem.line, problem.message) == (FILE, line, message)


def test_every_bad_line_is_reported() -> None:
    with pytest.raises(SpecError) as err:
        parse_dotenv("A B=1\nOK=1\nC D=2\n", FILE)
    assert [p.line for p in err.value.problems] == [1, 3]


def test_read_dotenv(tmp_path: Path) -> None:
    assert read_dotenv(tmp_path / ".env") == {}
    (tmp_path / ".env").write_text("A=1\n", encoding="utf-8")
    assert read_dotenv(tmp_path / ".env") == {"A": "1"}

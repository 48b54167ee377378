"""The env files envplane writes for Compose (#9.8): every value quoted so it reads back exactly.

The real check is Compose itself (tests/integration/test_env_file_values.py); here the
writer is held to the parser of the same rules and to its refusals.
"""

from __future__ import annotations

import stat
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from envplane.compose.dotenv import NotCarried, env_file_text, parse_dotenv, quoted
from envplane.errors import UsageError
from envplane.provision import write_env_file
from envplane.secret import Secret

FILE = Path("web.env")
CARRIED = st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\0"))


@pytest.mark.parametrize(("value", "written"), [
    ('p$2b$12$ab #c "q"', '"p$$2b$$12$$ab #c \\"q\\""'),
    ("a #b", '"a #b"'),
    ("x\ny\r", '"x\\ny\\r"'),
    ("C:\\dir\\n", '"C:\\\\dir\\\\n"'),
    ("${HOME}", '"$${HOME}"'),
    ("", '""'),
])
def test_values_are_double_quoted_with_escapes(value: str, written: str) -> None:
    assert quoted("K", value) == written


@given(st.dictionaries(st.from_regex(r"[A-Za-z_][A-Za-z0-9_]{0,8}", fullmatch=True), CARRIED, max_size=6))
def test_every_value_reads_back_exactly(values: dict[str, str]) -> None:
    assert parse_dotenv(env_file_text(values), FILE, {"HOME": "/root", "A": "interpolated"}) == values


@pytest.mark.parametrize(("key", "value", "reason"), [
    ("TOKEN", "abc\0def", "the value of TOKEN contains a NUL character"),
    ("TOKEN", "abc\udcffdef", "the value of TOKEN is not valid Unicode text"),
    ("NOT A NAME", "abc", "'NOT A NAME' is not a variable name"),
])
def test_what_no_env_file_can_carry_is_refused_by_name(key: str, value: str, reason: str) -> None:
    with pytest.raises(NotCarried) as caught:
        quoted(key, value)
    assert str(caught.value).startswith(reason)
    assert "abc" not in str(caught.value)


def test_write_env_file_is_private_and_refuses_without_writing(tmp_path: Path) -> None:
    path = tmp_path / ".envplane" / "instances" / "test" / "pr-1" / "web.env"
    write_env_file(path, {"DATABASE_URL": Secret("postgres://u:p%40ss@h/db"), "S3_BUCKET": "b"})
    assert path.read_text() == 'DATABASE_URL="postgres://u:p%40ss@h/db"\nS3_BUCKET="b"\n'
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE((tmp_path / ".envplane").stat().st_mode) == 0o700
    assert (tmp_path / ".envplane" / ".gitignore").read_text() == "*\n"
    with pytest.raises(UsageError) as caught:
        write_env_file(path, {"API_KEY": Secret("s3cr3t\0v4lue"), "S3_BUCKET": "c"})
    assert caught.value.message == ("the value of API_KEY contains a NUL character, which no environment "
                                    "variable can hold; service web cannot be given it")
    assert "s3cr3t" not in caught.value.message + caught.value.hint
    assert 'S3_BUCKET="b"' in path.read_text()  # the old file stands; nothing half-written

"""Detail fields take plain JSON data and never a Secret."""

from __future__ import annotations

import pytest

from envplane.secret import Secret
from envplane.state.guard import plain_detail, refuse_secrets


def test_plain_data_passes_and_is_copied():
    detail = {"a": [1, 2.5, True, None, {"b": "c"}], "t": ("x",)}
    plain = plain_detail(detail)
    assert plain == {"a": [1, 2.5, True, None, {"b": "c"}], "t": ["x"]}
    assert plain is not detail and plain["a"] is not detail["a"]


def test_none_is_an_empty_detail():
    assert plain_detail(None) == {}


@pytest.mark.parametrize(
    ("detail", "message"),
    [
        ({"token": Secret("t")}, "token: a Secret must never be stored"),
        ({"a": [{"b": Secret("t")}]}, r"a\[0\]\.b: a Secret must never be stored"),
        ({"when": object()}, "when: object is not plain JSON data"),
        ({"ratio": float("nan")}, "ratio: nan cannot be stored as JSON"),
        ({1: "x"}, "keys must be strings"),
    ],
)
def test_refused_values_name_their_path(detail, message):
    with pytest.raises(TypeError, match=message):
        plain_detail(detail)


def test_a_detail_that_is_not_a_dict_is_refused():
    with pytest.raises(TypeError, match="detail must be a dict, not list"):
        plain_detail([1])  # type: ignore[arg-type]


def test_refuse_secrets_names_the_field():
    refuse_secrets(actor="alice", ref=None)
    with pytest.raises(TypeError, match="holder: a Secret"):
        refuse_secrets(holder=Secret("x"))

from __future__ import annotations

import pytest

from envplane.errors import UsageError
from envplane.release.versions import Version, next_release, parse, require


def test_next_patch_follows_the_highest_version_like_seed_002() -> None:
    assert str(next_release(["v1.0.44", "v1.0.9", "sha-3f2a9c1", "latest"])) == "v1.0.45"


def test_order_is_numeric_not_textual() -> None:
    assert str(next_release(["v1.0.9", "v1.0.10", "v0.9.99"])) == "v1.0.11"
    assert str(next_release(["1.2.3", "v1.10.0"])) == "v1.10.1"


def test_no_version_yet_starts_at_the_first() -> None:
    assert next_release([]) == Version(1, 0, 0)
    assert next_release(["sha-abc"], first=Version(0, 1, 0)) == Version(0, 1, 0)


def test_parse_and_require() -> None:
    assert parse("v2.3.4") == Version(2, 3, 4)
    assert parse("v2.3") is None
    with pytest.raises(UsageError, match="'latest' is not a version"):
        require("latest")

"""Pytest configuration shared by all tiers."""

from collections.abc import Iterator

import pytest

from tests import support


@pytest.fixture(autouse=True)
def _port_blocks_of_this_test() -> Iterator[None]:
    """Port blocks are handed out once per test: a test's teardown frees its blocks."""
    support.GIVEN_BLOCKS.clear()
    yield

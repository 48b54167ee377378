"""The test suite's own port blocks: two blocks one test draws never share a port.

A preview test drew 200 ports for its PRs and then one for staging; the one landed inside
the 200 (PR 11's port), and staging and the preview claimed the same host port one run in
about twenty-four.
"""

from __future__ import annotations

import pytest

from tests import support


def test_a_later_block_never_overlaps_an_earlier_one_of_the_same_test() -> None:
    wide = support.free_port_block(200)
    narrow: list[int] = []
    with pytest.raises(RuntimeError, match="no free block"):
        while True:  # every one-port block the range still has, until it has none
            narrow.append(support.free_port_block(1))
    assert narrow
    assert [p for p in narrow if wide <= p < wide + 200] == []

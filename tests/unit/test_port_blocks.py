"""The test suite's own port blocks: two blocks one test draws never share a port.

A preview test drew 200 ports for its PRs and then one for staging; the one landed inside
the 200 (PR 11's port), and staging and the preview claimed the same host port one run in
about twenty-four.
"""

from __future__ import annotations

from pathlib import Path

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


def tour_ports() -> set[int]:
    """What `envplane plan` says the README tour publishes: the example on its own ports."""
    from envplane.spec.load import load_project
    from envplane.target import resolve

    project = load_project(Path(__file__).parents[2] / "examples/finance-report/envplane.yaml", {})
    plans = [resolve(project, "docker"), resolve(project, "staging"), resolve(project, "production"),
             resolve(project, "test", pr=7)]
    return {p.published for t in plans for s in t.services for p in s.ports if p.published}


@pytest.mark.parametrize("slot", ["", "1", "3"])
@pytest.mark.parametrize("worker", ["gw0", "gw1"])
def test_no_block_holds_a_port_the_readme_tour_publishes(
        slot: str, worker: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """The tour's `envplane up docker` found 23000 taken by a test on the other CI worker."""
    monkeypatch.setenv("ENVPLANE_TEST_PORT_SLOT", slot)
    monkeypatch.setenv("PYTEST_XDIST_WORKER", worker)
    blocks: list[int] = []
    with pytest.raises(RuntimeError, match="no free block"):
        while True:  # every block of 100 the worker's range has, until it has none
            blocks.append(support.free_port_block(100))
    drawn = {port for start in blocks for port in range(start, start + 100)}
    assert len(blocks) >= 15  # most of the range is still handed out
    assert sorted(drawn & tour_ports()) == []

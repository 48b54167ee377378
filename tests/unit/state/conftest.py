"""Every state test runs on SQLite and, marked integration, on a real PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from envplane.state.db import Store
from tests.unit.state.stores import FakeClock, store_for

BACKENDS = ["sqlite", pytest.param("postgres", marks=pytest.mark.integration)]


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def store_and_url(backend: str, tmp_path: Path) -> Iterator[tuple[Store, str | None]]:
    with store_for(backend, tmp_path) as pair:
        yield pair


@pytest.fixture
def store(store_and_url: tuple[Store, str | None]) -> Store:
    return store_and_url[0]


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()

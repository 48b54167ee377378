"""Connections to the real servers the resource backends are tested against.

Each fixture stops the test with `need()` when its variable is unset or the server does
not answer: a failure under CI=true, a skip elsewhere. Names carry a random run id so
parallel and repeated runs never meet.
"""

from __future__ import annotations

import os
import uuid

import psycopg
import pytest

from envplane.backends.database.postgres import PostgresDatabases
from envplane.secret import Secret
from tests.support import need

POSTGRES = "ENVPLANE_TEST_POSTGRES_URL"


@pytest.fixture
def run_id() -> str:
    return uuid.uuid4().hex[:8]


def _postgres_answers(url: str) -> bool:
    try:
        with psycopg.connect(url, connect_timeout=5):
            return True
    except psycopg.Error:
        return False


@pytest.fixture
def postgres_url() -> Secret:
    url = os.environ.get(POSTGRES, "")
    need("PostgreSQL", bool(url) and _postgres_answers(url), f"eval $(bash scripts/services/postgres.sh | tail -1) sets {POSTGRES}")
    return Secret(url)


@pytest.fixture
def postgres(postgres_url: Secret) -> PostgresDatabases:
    return PostgresDatabases(postgres_url)

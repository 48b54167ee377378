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
import redis

from envplane.backends.cache.redis import RedisUsers
from envplane.backends.database.postgres import PostgresDatabases
from envplane.backends.objects.s3 import S3Store
from envplane.backends.objects.s3_identity import S3Identities
from envplane.errors import BackendError
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
    need("PostgreSQL", bool(url) and _postgres_answers(url),
         f"eval $(bash scripts/services/postgres.sh | tail -1) sets {POSTGRES}")
    return Secret(url)


@pytest.fixture
def postgres(postgres_url: Secret) -> PostgresDatabases:
    return PostgresDatabases(postgres_url)


def _s3_answers(store: S3Store) -> bool:
    try:
        store.observe("envplane-probe")
    except BackendError:
        return False
    return True


@pytest.fixture
def s3() -> S3Store:
    endpoint = os.environ.get("ENVPLANE_TEST_S3_ENDPOINT", "")
    access = os.environ.get("ENVPLANE_TEST_S3_ACCESS_KEY", "")
    secret = Secret(os.environ.get("ENVPLANE_TEST_S3_SECRET_KEY", ""))
    store = S3Store(endpoint, access, secret) if endpoint else None
    need("S3 (SeaweedFS)", store is not None and _s3_answers(store),
         "eval $(bash scripts/services/seaweedfs.sh | tail -1) sets ENVPLANE_TEST_S3_*")
    assert store is not None
    return store


@pytest.fixture
def s3_users(s3: S3Store) -> S3Identities:
    """The IAM API of the same server, with the admin key (SeaweedFS: -s3.iam.readOnly=false)."""
    return S3Identities(s3.endpoint, s3.access_key, Secret(os.environ.get("ENVPLANE_TEST_S3_SECRET_KEY", "")))


def _redis_answers(url: str) -> bool:
    try:
        return bool(redis.Redis.from_url(url, socket_connect_timeout=3).ping())
    except redis.RedisError:
        return False


@pytest.fixture
def redis_url() -> Secret:
    url = os.environ.get("ENVPLANE_TEST_REDIS_URL", "")
    need("Redis", bool(url) and _redis_answers(url),
         "eval $(bash scripts/services/redis.sh | tail -1) sets ENVPLANE_TEST_REDIS_URL")
    return Secret(url)


@pytest.fixture
def redis_users(redis_url: Secret) -> RedisUsers:
    return RedisUsers(redis_url)

"""The Redis backend against a real server (scripts/services/redis.sh)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import redis
from redis.exceptions import NoPermissionError

from envplane.backends.cache.redis import RedisUsers
from envplane.errors import BackendError
from envplane.secret import Secret

pytestmark = pytest.mark.integration

STAGING_PASSWORD = Secret("staging-redis-password-must-not-leak")
PR5_PASSWORD = Secret("pr5-redis-password-must-not-leak")


@pytest.fixture
def prefixes(redis_users: RedisUsers, run_id: str) -> Iterator[dict[str, str]]:
    app = f"finance-report-{run_id}"
    made = {"staging": f"{app}:staging:", "pr-5": f"{app}:pr-5:", "pr-50": f"{app}:pr-50:",
            "production": f"{app}:production:"}
    yield made
    for prefix in made.values():
        redis_users.purge(prefix)


def as_user(users: RedisUsers, prefix: str, password: Secret) -> redis.Redis:
    return redis.Redis.from_url(users.url(prefix, password).reveal(), decode_responses=True)


def admin(url: Secret) -> redis.Redis:
    return redis.Redis.from_url(url.reveal(), decode_responses=True)


def test_ensure_twice_second_is_a_noop(redis_users: RedisUsers, prefixes: dict[str, str]) -> None:
    prefix = prefixes["staging"]
    assert [c.action for c in redis_users.ensure(prefix, STAGING_PASSWORD)] == ["create"]
    again = redis_users.ensure(prefix, STAGING_PASSWORD)
    assert [c.action for c in again] == ["noop"]
    assert again[0].reason == f"Redis user {prefix[:-1]} exists, limited to keys {prefix}*"


def test_a_new_password_replaces_the_old(redis_users: RedisUsers, prefixes: dict[str, str]) -> None:
    prefix = prefixes["staging"]
    redis_users.ensure(prefix, STAGING_PASSWORD)
    change = redis_users.ensure(prefix, Secret("rotated"))[0]
    assert change.action == "update" and change.reason.startswith("password differs")
    assert as_user(redis_users, prefix, Secret("rotated")).ping()
    with pytest.raises(redis.AuthenticationError):
        as_user(redis_users, prefix, STAGING_PASSWORD).ping()


def test_staging_cannot_touch_production_keys(redis_users: RedisUsers, redis_url: Secret,
                                              prefixes: dict[str, str]) -> None:
    staging, production = prefixes["staging"], prefixes["production"]
    redis_users.ensure(staging, STAGING_PASSWORD)
    admin(redis_url).set(f"{production}session", "production-value")
    client = as_user(redis_users, staging, STAGING_PASSWORD)
    client.set(f"{staging}session", "mine")
    assert client.get(f"{staging}session") == "mine"
    with pytest.raises(NoPermissionError):
        client.get(f"{production}session")
    with pytest.raises(NoPermissionError):
        client.set(f"{production}session", "overwritten")
    with pytest.raises(NoPermissionError):
        client.keys("*")  # @dangerous
    with pytest.raises(NoPermissionError):
        client.flushdb()
    assert admin(redis_url).get(f"{production}session") == "production-value"


def test_a_preview_user_cannot_learn_staging_key_or_channel_names(
        redis_users: RedisUsers, redis_url: Secret, prefixes: dict[str, str]) -> None:
    """Redis checks key patterns only on commands that name keys: SCAN, RANDOMKEY, PUBSUB
    CHANNELS and CLIENT TRACKING BCAST would show another instance's key and channel names."""
    staging, pr5 = prefixes["staging"], prefixes["pr-5"]
    redis_users.ensure(pr5, PR5_PASSWORD)
    admin(redis_url).set(f"{staging}customer:alice@example.com", "1")
    subscriber = admin(redis_url).pubsub()
    subscriber.subscribe(f"{staging}orders")
    client = as_user(redis_users, pr5, PR5_PASSWORD)
    for command in (("SCAN", "0", "MATCH", f"{staging}*", "COUNT", "100000"), ("RANDOMKEY",),
                    ("PUBSUB", "CHANNELS"), ("PUBSUB", "NUMSUB", f"{staging}orders"),
                    ("CLIENT", "TRACKING", "ON", "BCAST")):
        with pytest.raises(NoPermissionError):
            client.execute_command(*command)
    subscriber.close()
    client.set(f"{pr5}own", "1")  # its own keys still work, one by one
    assert client.get(f"{pr5}own") == "1"


def test_purge_pr5_leaves_staging_and_pr50_intact(redis_users: RedisUsers, redis_url: Secret,
                                                  prefixes: dict[str, str]) -> None:
    staging, pr5, pr50 = prefixes["staging"], prefixes["pr-5"], prefixes["pr-50"]
    redis_users.ensure(staging, STAGING_PASSWORD)
    redis_users.ensure(pr5, PR5_PASSWORD)
    as_user(redis_users, staging, STAGING_PASSWORD).set(f"{staging}a", "1")
    pr5_client = as_user(redis_users, pr5, PR5_PASSWORD)
    pr5_client.mset({f"{pr5}{i}": i for i in range(1200)})  # more than one SCAN batch
    admin(redis_url).set(f"{pr50}a", "1")
    changes = redis_users.purge(pr5)
    assert [(c.action, c.reason) for c in changes] == [("delete", "user deleted"), ("delete", "1200 keys deleted")]
    assert [c.action for c in redis_users.purge(pr5)] == ["noop", "noop"]
    assert not redis_users.observe(pr5).exists
    assert list(admin(redis_url).scan_iter(match=f"{pr5}*")) == []
    assert admin(redis_url).get(f"{pr50}a") == "1"
    assert as_user(redis_users, staging, STAGING_PASSWORD).get(f"{staging}a") == "1"
    with pytest.raises(redis.AuthenticationError):
        as_user(redis_users, pr5, PR5_PASSWORD).ping()


def test_connection_refused_is_a_backend_error_with_a_hint() -> None:
    down = RedisUsers(Secret("redis://admin:admin-password-must-not-leak@127.0.0.1:1/0"))
    with pytest.raises(BackendError) as caught:
        down.ensure("finance-report:staging:", STAGING_PASSWORD)
    error = caught.value
    assert error.message.startswith("cannot connect to Redis at 127.0.0.1:1/0")
    assert "ENVPLANE_REDIS_URL" in error.hint
    assert "must-not-leak" not in f"{error} {error!r} {down!r}"


def test_wrong_admin_password_is_a_backend_error(redis_url: Secret) -> None:
    bad = RedisUsers(Secret(redis_url.reveal().replace("redis://", "redis://nobody:wrong-must-not-leak@")))
    with pytest.raises(BackendError) as caught:
        bad.observe("finance-report:staging:")
    assert "refused the admin credentials" in caught.value.message
    assert "must-not-leak" not in str(caught.value)


def test_no_password_in_any_output(redis_users: RedisUsers, prefixes: dict[str, str]) -> None:
    prefix = prefixes["staging"]
    outputs: list[object] = [*redis_users.ensure(prefix, STAGING_PASSWORD),
                             *redis_users.ensure(prefix, PR5_PASSWORD), redis_users.observe(prefix),
                             redis_users.url(prefix, STAGING_PASSWORD), redis_users,
                             *redis_users.purge(prefix)]
    for output in outputs:
        for shown in (str(output), repr(output), f"{output}"):
            assert "must-not-leak" not in shown

"""The S3 backend against a real SeaweedFS server (scripts/services/seaweedfs.sh)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from envplane.backends.objects.s3 import S3Store
from envplane.errors import BackendError
from envplane.secret import Secret

pytestmark = pytest.mark.integration


@pytest.fixture
def buckets(s3: S3Store, run_id: str) -> Iterator[dict[str, str]]:
    made = {"staging": f"finance-report-{run_id}-staging", "pr-5": f"finance-report-{run_id}-pr-5"}
    yield made
    for bucket in made.values():
        s3.purge(bucket)


def test_ensure_twice_second_is_a_reuse(s3: S3Store, buckets: dict[str, str]) -> None:
    bucket = buckets["staging"]
    assert s3.observe(bucket).keys() == frozenset()
    assert [c.action for c in s3.ensure(bucket)] == ["create"]
    again = s3.ensure(bucket)
    assert [(c.action, c.reason) for c in again] == [("noop", f"reuse bucket {bucket}")]
    assert s3.observe(bucket).keys() == {f"bucket:{bucket}"}


def test_purge_pr5_leaves_staging_intact(s3: S3Store, buckets: dict[str, str]) -> None:
    staging, pr5 = buckets["staging"], buckets["pr-5"]
    s3.ensure(staging)
    s3.ensure(pr5)
    s3.put(staging, "reports/2024.csv", b"staging data")
    for i in range(1005):  # more than one DeleteObjects batch and one listing page
        s3.put(pr5, f"objects/{i:04}", b"x")
    change = s3.purge(pr5)[0]
    assert change.action == "delete" and change.reason.startswith("1005 objects")
    assert s3.purge(pr5)[0].action == "noop"
    assert not s3.observe(pr5).exists
    assert s3.get(staging, "reports/2024.csv") == b"staging data"
    assert s3.keys(staging) == ["reports/2024.csv"]


def test_purge_removes_every_version(s3: S3Store, buckets: dict[str, str]) -> None:
    pr5 = buckets["pr-5"]
    s3.ensure(pr5)
    s3._client.put_bucket_versioning(Bucket=pr5, VersioningConfiguration={"Status": "Enabled"})
    s3.put(pr5, "a", b"1")
    s3.put(pr5, "a", b"2")
    s3._client.delete_object(Bucket=pr5, Key="a")  # leaves a delete marker and two versions
    assert s3.purge(pr5)[0].action == "delete"
    assert not s3.observe(pr5).exists


def test_a_wrong_secret_key_is_a_backend_error_without_the_key(s3: S3Store, buckets: dict[str, str]) -> None:
    wrong = S3Store(s3.endpoint, s3.access_key, Secret("wrong-secret-must-not-leak"))
    for action in (wrong.observe, wrong.ensure, wrong.purge):
        with pytest.raises(BackendError) as caught:
            action(buckets["staging"])
        error = caught.value
        assert "refused" in error.message and "ENVPLANE_S3_SECRET_KEY" in error.hint
        assert error.__cause__ is None and error.__suppress_context__
        assert "must-not-leak" not in f"{error} {error!r} {error.hint} {wrong!r} {wrong}"


def test_an_unreachable_endpoint_is_a_backend_error_with_a_hint() -> None:
    down = S3Store("http://127.0.0.1:1", "key", Secret("secret-must-not-leak"))
    with pytest.raises(BackendError) as caught:
        down.ensure("finance-report-staging")
    assert caught.value.message.startswith("cannot reach S3 at http://127.0.0.1:1")
    assert "ENVPLANE_S3_ENDPOINT" in caught.value.hint
    assert "must-not-leak" not in str(caught.value)


def test_no_secret_in_any_output(s3: S3Store, buckets: dict[str, str]) -> None:
    secret = s3._secret_key.reveal()
    outputs: list[object] = [*s3.ensure(buckets["staging"]), *s3.ensure(buckets["staging"]),
                             s3.observe(buckets["staging"]), s3, *s3.purge(buckets["staging"])]
    for output in outputs:
        for shown in (str(output), repr(output), f"{output}"):
            assert secret not in shown

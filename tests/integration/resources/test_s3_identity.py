"""#9.3: each instance's S3 key reaches its own bucket only, against the real SeaweedFS
(scripts/services/seaweedfs.sh starts it with its IAM API writable)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import boto3  # type: ignore[import-untyped]
import pytest
from botocore.config import Config  # type: ignore[import-untyped]
from botocore.exceptions import ClientError  # type: ignore[import-untyped]

from envplane.backends.objects.s3 import S3Store
from envplane.backends.objects.s3_identity import S3Identities, S3Key
from envplane.errors import BackendError

pytestmark = pytest.mark.integration


@pytest.fixture
def buckets(s3: S3Store, s3_users: S3Identities, run_id: str) -> Iterator[dict[str, str]]:
    made = {"staging": f"finance-report-{run_id}-staging", "pr-5": f"finance-report-{run_id}-pr-5"}
    for bucket in made.values():
        s3.ensure(bucket)
    yield made
    for bucket in made.values():
        s3.purge(bucket)
        s3_users.purge(bucket)


def client_of(s3: S3Store, key: S3Key) -> Any:
    return boto3.client("s3", endpoint_url=s3.endpoint, aws_access_key_id=key.access_key_id,
                        aws_secret_access_key=key.secret_access_key.reveal(), region_name="us-east-1",
                        config=Config(s3={"addressing_style": "path"}, retries={"max_attempts": 1}))


def refused(action: Any) -> str:
    with pytest.raises(ClientError) as info:
        action()
    return str(info.value.response["Error"]["Code"])


def test_a_preview_key_reaches_its_own_bucket_and_nothing_else(
        s3: S3Store, s3_users: S3Identities, buckets: dict[str, str]) -> None:
    staging, pr5 = buckets["staging"], buckets["pr-5"]
    s3.put(staging, "customers.csv", b"production-like data")
    changes, key = s3_users.ensure(pr5, None)
    assert [(c.action, c.what) for c in changes] == [("create", f"S3 user {pr5}")]
    assert key.access_key_id != s3.access_key and str(key.secret_access_key) == "***"

    pr = client_of(s3, key)
    pr.put_object(Bucket=pr5, Key="report.pdf", Body=b"mine")
    assert pr.get_object(Bucket=pr5, Key="report.pdf")["Body"].read() == b"mine"
    assert [o["Key"] for o in pr.list_objects_v2(Bucket=pr5)["Contents"]] == ["report.pdf"]
    pr.head_bucket(Bucket=pr5)

    assert refused(lambda: pr.get_object(Bucket=staging, Key="customers.csv")) == "AccessDenied"
    assert refused(lambda: pr.list_objects_v2(Bucket=staging)) == "AccessDenied"
    assert refused(lambda: pr.delete_object(Bucket=staging, Key="customers.csv")) == "AccessDenied"
    assert refused(lambda: pr.put_object(Bucket=staging, Key="x", Body=b"x")) == "AccessDenied"
    assert refused(lambda: pr.copy_object(Bucket=pr5, Key="stolen",
                                          CopySource={"Bucket": staging, "Key": "customers.csv"})) == "AccessDenied"
    assert refused(lambda: pr.create_bucket(Bucket=f"{pr5}-more")) == "AccessDenied"
    assert refused(lambda: pr.delete_bucket(Bucket=pr5)) == "AccessDenied"
    assert refused(lambda: pr.put_bucket_policy(Bucket=pr5, Policy=json.dumps({
        "Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Principal": "*", "Action": "s3:GetObject",
                                                "Resource": f"arn:aws:s3:::{pr5}/*"}]}))) == "AccessDenied"
    # SeaweedFS answers ListBuckets with the buckets the key may see, never AccessDenied:
    # the preview learns no other bucket's name.
    assert [b["Name"] for b in pr.list_buckets()["Buckets"]] == [pr5]
    assert s3.get(staging, "customers.csv") == b"production-like data"


def test_ensure_with_the_stored_key_changes_nothing(s3_users: S3Identities, buckets: dict[str, str]) -> None:
    pr5 = buckets["pr-5"]
    _, key = s3_users.ensure(pr5, None)
    changes, again = s3_users.ensure(pr5, key)
    assert again == key
    assert [(c.action, c.reason) for c in changes] == [("noop", f"S3 user {pr5} exists, limited to bucket {pr5}")]
    assert s3_users.observe(pr5).keys_observed(key.access_key_id) == {f"s3key:{pr5}"}
    assert s3_users.observe(pr5).keys_observed(None) == frozenset()


def test_a_key_lost_from_the_store_is_replaced_and_the_old_one_stops_working(
        s3: S3Store, s3_users: S3Identities, buckets: dict[str, str]) -> None:
    pr5 = buckets["pr-5"]
    _, lost = s3_users.ensure(pr5, None)
    changes, key = s3_users.ensure(pr5, None)  # a run killed before it stored the key
    assert key.access_key_id != lost.access_key_id
    assert changes[0].action == "update" and "1 key(s) not in the secret store deleted" in changes[0].reason
    assert s3_users.observe(pr5).access_keys == (key.access_key_id,)
    assert refused(lambda: client_of(s3, lost).list_objects_v2(Bucket=pr5)) == "InvalidAccessKeyId"
    client_of(s3, key).list_objects_v2(Bucket=pr5)


def test_purge_removes_the_user_and_its_key_stops_working(
        s3: S3Store, s3_users: S3Identities, buckets: dict[str, str]) -> None:
    staging, pr5 = buckets["staging"], buckets["pr-5"]
    _, staging_key = s3_users.ensure(staging, None)
    _, key = s3_users.ensure(pr5, None)
    assert [c.action for c in s3_users.purge(pr5)] == ["delete"]
    assert [c.action for c in s3_users.purge(pr5)] == ["noop"]
    assert not s3_users.observe(pr5).exists
    assert refused(lambda: client_of(s3, key).list_objects_v2(Bucket=pr5)) == "InvalidAccessKeyId"
    client_of(s3, staging_key).list_objects_v2(Bucket=staging)  # staging's key is untouched


def test_a_user_with_someone_else_s_policy_is_refused(s3_users: S3Identities, buckets: dict[str, str]) -> None:
    pr5 = buckets["pr-5"]
    iam: Any = s3_users._client  # the test plays someone who made it by hand
    iam.create_user(UserName=pr5)
    iam.put_user_policy(UserName=pr5, PolicyName="hand-made", PolicyDocument=json.dumps({
        "Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": ["s3:*"], "Resource": ["*"]}]}))
    with pytest.raises(BackendError, match=f"S3 user {pr5} exists and was not made by envplane"):
        s3_users.ensure(pr5, None)
    with pytest.raises(BackendError, match="not made by envplane"):
        s3_users.purge(pr5)
    iam.delete_user_policy(UserName=pr5, PolicyName="hand-made")
    iam.delete_user(UserName=pr5)


def test_no_secret_in_any_output(s3: S3Store, s3_users: S3Identities, buckets: dict[str, str]) -> None:
    changes, key = s3_users.ensure(buckets["pr-5"], None)
    text = " ".join([*map(str, changes), repr(s3_users), repr(key), str(key.as_secrets())])
    assert key.secret_access_key.reveal() not in text
    admin_secret = s3_users._secret_key.reveal()
    assert admin_secret not in text

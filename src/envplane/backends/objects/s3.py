"""S3 (SeaweedFS, MinIO, R2, AWS): one bucket per environment instance.

Credentials come from the constructor (the CLI reads ENVPLANE_S3_*). The secret key is a
Secret, revealed only when the client is built; every botocore error becomes a
BackendError that names the operation and the access key, never the secret.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, TypeVar, cast

import boto3  # type: ignore[import-untyped]
from botocore.config import Config  # type: ignore[import-untyped]
from botocore.exceptions import BotoCoreError, ClientError  # type: ignore[import-untyped]

from envplane.backends.database.change import Change, create, delete, noop
from envplane.backends.objects.names import check_bucket
from envplane.errors import BackendError
from envplane.secret import Secret, mask

T = TypeVar("T")
BATCH = 1000  # DeleteObjects takes at most 1000 keys
_MISSING = {"404", "NoSuchBucket", "NotFound"}
_BAD_KEY = {"SignatureDoesNotMatch", "InvalidAccessKeyId", "AccessDenied", "403"}


@dataclass(frozen=True)
class BucketFacts:
    name: str
    exists: bool

    def keys(self) -> frozenset[str]:
        return frozenset({f"bucket:{self.name}"} if self.exists else set())


class S3Store:
    def __init__(self, endpoint: str, access_key: str, secret_key: Secret, region: str = "us-east-1") -> None:
        self.endpoint = endpoint
        self.access_key = access_key
        self._secret_key = secret_key
        self._client: Any = boto3.client(
            "s3",
            endpoint_url=endpoint or None,
            aws_access_key_id=access_key,
            aws_secret_access_key=secret_key.reveal(),
            region_name=region,
            config=Config(
                connect_timeout=5, read_timeout=30, retries={"max_attempts": 2},
                s3={"addressing_style": "path"},  # self-hosted servers rarely have wildcard DNS
            ),
        )

    def __repr__(self) -> str:
        return f"S3Store(endpoint={self.endpoint!r}, access_key={self.access_key!r})"

    def observe(self, bucket: str) -> BucketFacts:
        check_bucket(bucket)
        try:
            self._client.head_bucket(Bucket=bucket)
        except ClientError as err:
            if _code(err) in _MISSING:
                return BucketFacts(bucket, exists=False)
            raise self._error(f"look up bucket {bucket}", err) from None
        except BotoCoreError as err:
            raise self._error(f"look up bucket {bucket}", err) from None
        return BucketFacts(bucket, exists=True)

    def ensure(self, bucket: str) -> list[Change]:
        if self.observe(bucket).exists:
            return [noop(f"bucket {bucket}", f"reuse bucket {bucket}")]
        self._call(f"create bucket {bucket}", lambda: self._client.create_bucket(Bucket=bucket))
        return [create(f"bucket {bucket}")]

    def purge(self, bucket: str) -> list[Change]:
        if not self.observe(bucket).exists:
            return [noop(f"bucket {bucket}", f"bucket {bucket} does not exist")]
        removed = self._empty(bucket)
        self._call(f"delete bucket {bucket}", lambda: self._client.delete_bucket(Bucket=bucket))
        return [delete(f"bucket {bucket}", f"{removed} objects and versions removed, bucket deleted")]

    def put(self, bucket: str, key: str, body: bytes) -> None:
        self._call(f"put {bucket}/{key}", lambda: self._client.put_object(Bucket=bucket, Key=key, Body=body))

    def get(self, bucket: str, key: str) -> bytes:
        answer = self._call(f"get {bucket}/{key}", lambda: self._client.get_object(Bucket=bucket, Key=key))
        return cast(bytes, answer["Body"].read())

    def keys(self, bucket: str) -> list[str]:
        return sorted(item["Key"] for item in self._listed(bucket))

    # --- emptying -----------------------------------------------------------------

    def _empty(self, bucket: str) -> int:
        # Versions first (they include every current object of a versioned bucket), then
        # whatever a plain listing still shows: servers without versioning answer only that.
        removed = self._delete_all(bucket, self._versions(bucket))
        return removed + self._delete_all(bucket, ({"Key": item["Key"]} for item in self._listed(bucket)))

    def _delete_all(self, bucket: str, items: Iterator[dict[str, str]]) -> int:
        count = 0
        batch: list[dict[str, str]] = []
        for item in items:
            batch.append(item)
            if len(batch) == BATCH:
                count += self._delete_batch(bucket, batch)
                batch = []
        return count + (self._delete_batch(bucket, batch) if batch else 0)

    def _delete_batch(self, bucket: str, batch: list[dict[str, str]]) -> int:
        answer = self._call(
            f"delete objects in {bucket}",
            lambda: self._client.delete_objects(Bucket=bucket, Delete={"Objects": batch, "Quiet": True}),
        )
        errors = answer.get("Errors") or []
        if errors:
            first = errors[0]
            raise BackendError(
                f"S3 kept {len(errors)} objects of bucket {bucket}, "
                f"e.g. {first.get('Key')}: {first.get('Code')}",
                "check the bucket's object lock and the access key's permissions",
            )
        return len(batch)

    def _versions(self, bucket: str) -> Iterator[dict[str, str]]:
        pages = self._pages("list_object_versions", bucket)
        try:
            for page in pages:
                for item in [*page.get("Versions", []), *page.get("DeleteMarkers", [])]:
                    yield {"Key": item["Key"], "VersionId": item["VersionId"]}
        except ClientError as err:
            if _code(err) in {"NotImplemented", "501"}:
                return
            raise self._error(f"list versions in {bucket}", err) from None
        except BotoCoreError as err:
            raise self._error(f"list versions in {bucket}", err) from None

    def _listed(self, bucket: str) -> Iterator[dict[str, Any]]:
        try:
            for page in self._pages("list_objects_v2", bucket):
                yield from page.get("Contents", [])
        except (ClientError, BotoCoreError) as err:
            raise self._error(f"list objects in {bucket}", err) from None

    def _pages(self, operation: str, bucket: str) -> Iterator[dict[str, Any]]:
        return cast(Iterator[dict[str, Any]], self._client.get_paginator(operation).paginate(Bucket=bucket))

    # --- errors ---------------------------------------------------------------

    def _call(self, what: str, action: Callable[[], T]) -> T:
        try:
            return action()
        except (ClientError, BotoCoreError) as err:
            raise self._error(what, err) from None

    def _error(self, what: str, err: Exception) -> BackendError:
        code = _code(err) if isinstance(err, ClientError) else type(err).__name__
        detail = mask(str(err), [self._secret_key])
        if code in _BAD_KEY:
            return BackendError(
                f"S3 at {self.endpoint} refused to {what} for access key {self.access_key}: {code}",
                "check ENVPLANE_S3_ACCESS_KEY and ENVPLANE_S3_SECRET_KEY and the key's permissions",
            )
        if isinstance(err, BotoCoreError):
            return BackendError(
                f"cannot reach S3 at {self.endpoint} to {what}: {detail}",
                "is the server running and ENVPLANE_S3_ENDPOINT right?",
            )
        return BackendError(f"S3 at {self.endpoint} failed to {what}: {detail}", "")


def _code(err: ClientError) -> str:
    return str(err.response.get("Error", {}).get("Code", ""))

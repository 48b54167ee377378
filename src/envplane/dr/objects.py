"""A bucket's objects as one tar stream, and back (no temporary files either way).

Each object is one tar member; its key, content type and user metadata ride in PAX
headers (`ENVPLANE.key`, …), so any key S3 allows — `a/../b`, a trailing `/`, 1,000
bytes of UTF-8 — comes back exactly, and no key is ever a path on this machine: a restore
writes objects into the bucket, never files.
"""

from __future__ import annotations

import io
import tarfile
from typing import IO, Any

KEY = "ENVPLANE.key"
CONTENT_TYPE = "ENVPLANE.content_type"
META = "ENVPLANE.meta."


def dump(client: Any, bucket: str, out: IO[bytes]) -> int:
    """Write every object of the bucket into `out` as a tar stream; return how many."""
    count = 0
    with tarfile.open(fileobj=out, mode="w|", format=tarfile.PAX_FORMAT) as tar:
        for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket):
            for item in page.get("Contents", []):
                answer = client.get_object(Bucket=bucket, Key=item["Key"])
                info = tarfile.TarInfo(f"objects/{count:012d}")
                info.size = int(answer["ContentLength"])
                info.mtime = int(item["LastModified"].timestamp())
                info.mode = 0o600
                headers = {KEY: item["Key"]}
                if answer.get("ContentType"):
                    headers[CONTENT_TYPE] = answer["ContentType"]
                for name, value in (answer.get("Metadata") or {}).items():
                    headers[META + name] = value
                info.pax_headers = headers
                tar.addfile(info, answer["Body"])
                count += 1
    return count


def load(client: Any, bucket: str, stream: IO[bytes]) -> int:
    """Put every object of a tar stream made by `dump` into the bucket; return how many."""
    count = 0
    with tarfile.open(fileobj=stream, mode="r|") as tar:
        for member in tar:
            if not member.isfile():
                continue
            key = member.pax_headers.get(KEY)
            if not key:
                raise ValueError(f"tar member {member.name} names no object key")
            body = tar.extractfile(member)
            assert body is not None
            extra: dict[str, Any] = {}
            if member.pax_headers.get(CONTENT_TYPE):
                extra["ContentType"] = member.pax_headers[CONTENT_TYPE]
            meta = {k[len(META):]: v for k, v in member.pax_headers.items() if k.startswith(META)}
            if meta:
                extra["Metadata"] = meta
            client.upload_fileobj(_Unseekable(body), bucket, key, ExtraArgs=extra or None)
            count += 1
    return count


def empty(client: Any, bucket: str) -> int:
    """Delete every object of the bucket (a restore replaces what it holds); return how many."""
    count = 0
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket):
        batch = [{"Key": item["Key"]} for item in page.get("Contents", [])]
        if batch:
            client.delete_objects(Bucket=bucket, Delete={"Objects": batch, "Quiet": True})
            count += len(batch)
    return count


class _Unseekable(io.RawIOBase):
    """A tar member of a stream, as boto3's upload takes it: read forward only."""

    def __init__(self, body: IO[bytes]) -> None:
        self.body = body

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        data = self.body.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)

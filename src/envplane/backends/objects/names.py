"""The bucket names a backend accepts (S3's rules; names.bucket_name makes them)."""

from __future__ import annotations

import re

from envplane.errors import UsageError

_BUCKET = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")
_IP = re.compile(r"^\d+\.\d+\.\d+\.\d+$")


def bucket_problem(name: str) -> str:
    """Why name is not a valid bucket name, or "" when it is."""
    if not _BUCKET.match(name):
        return "3-63 characters of a-z, 0-9, '.' and '-', starting and ending with a letter or digit"
    if ".." in name or ".-" in name or "-." in name:
        return "no '..', '.-' or '-.'"
    if _IP.match(name):
        return "not shaped like an IP address"
    if name.startswith(("xn--", "sthree-")) or name.endswith(("-s3alias", "--ol-s3")):
        return "no prefix xn--/sthree- or suffix -s3alias/--ol-s3 (reserved by S3)"
    return ""


def check_bucket(name: str) -> str:
    problem = bucket_problem(name)
    if problem:
        raise UsageError(f"{name!r} is not a bucket name: {problem}", "names.bucket_name makes one")
    return name

"""Reachability checks of the app's object store and cache, standard library only.

S3: a signed (SigV4) HEAD of the bucket; Redis: AUTH, then a write and read of a key
under the instance's prefix. Each returns a small dict for /api/health.
"""

from __future__ import annotations

import datetime
import hashlib
import hmac
import os
import socket
import urllib.error
import urllib.parse
import urllib.request
from typing import Any


def storage() -> dict[str, Any] | None:
    bucket, endpoint = os.environ.get("S3_BUCKET"), os.environ.get("S3_ENDPOINT", "")
    if not bucket:
        return None  # the app runs without an object store
    if endpoint.startswith("file://"):  # env local: a folder per bucket
        path = os.path.join(endpoint.removeprefix("file://"), bucket)
        return {"ok": os.path.isdir(path), "kind": "folder", "bucket": bucket}
    try:
        status = _head_bucket(endpoint, bucket, os.environ.get("S3_ACCESS_KEY_ID", ""),
                              os.environ.get("S3_SECRET_ACCESS_KEY", ""))
    except OSError as exc:
        return {"ok": False, "kind": "s3", "bucket": bucket, "error": type(exc).__name__}
    return {"ok": status == 200, "kind": "s3", "bucket": bucket, "status": status}


def cache() -> dict[str, Any] | None:
    url, prefix = os.environ.get("REDIS_URL"), os.environ.get("REDIS_PREFIX", "")
    if not url:
        return None
    parts = urllib.parse.urlsplit(url)
    try:
        with socket.create_connection((parts.hostname or "127.0.0.1", parts.port or 6379), timeout=3) as s:
            if parts.password:
                user = urllib.parse.unquote(parts.username or "default")
                _call(s, "AUTH", user, urllib.parse.unquote(parts.password))
            _call(s, "SET", f"{prefix}health", "ok")
            value = _call(s, "GET", f"{prefix}health")
    except (OSError, RuntimeError) as exc:
        return {"ok": False, "kind": "redis", "prefix": prefix, "error": str(exc)[:80]}
    return {"ok": value == "ok", "kind": "redis", "prefix": prefix}


def _call(sock: socket.socket, *args: str) -> str:
    request = f"*{len(args)}\r\n" + "".join(f"${len(a.encode())}\r\n{a}\r\n" for a in args)
    sock.sendall(request.encode())
    reader = sock.makefile("rb")
    line = reader.readline().decode().rstrip("\r\n")
    if line.startswith("-"):
        raise RuntimeError(line[1:].split(" ", 1)[0])  # the error code only, never arguments
    if line.startswith("$"):
        size = int(line[1:])
        return "" if size < 0 else reader.read(size + 2)[:-2].decode()
    return line[1:]


def _head_bucket(endpoint: str, bucket: str, key: str, secret: str, region: str = "us-east-1") -> int:
    url = f"{endpoint.rstrip('/')}/{bucket}"
    host = urllib.parse.urlsplit(url).netloc
    now = datetime.datetime.now(datetime.UTC)
    stamp, day = now.strftime("%Y%m%dT%H%M%SZ"), now.strftime("%Y%m%d")
    empty = hashlib.sha256(b"").hexdigest()
    headers = f"host:{host}\nx-amz-content-sha256:{empty}\nx-amz-date:{stamp}\n"
    signed = "host;x-amz-content-sha256;x-amz-date"
    canonical = f"HEAD\n/{bucket}\n\n{headers}\n{signed}\n{empty}"
    scope = f"{day}/{region}/s3/aws4_request"
    to_sign = f"AWS4-HMAC-SHA256\n{stamp}\n{scope}\n{hashlib.sha256(canonical.encode()).hexdigest()}"
    signing = f"AWS4{secret}".encode()
    for part in (day, region, "s3", "aws4_request"):
        signing = hmac.new(signing, part.encode(), hashlib.sha256).digest()
    signature = hmac.new(signing, to_sign.encode(), hashlib.sha256).hexdigest()
    request = urllib.request.Request(url, method="HEAD", headers={
        "x-amz-date": stamp, "x-amz-content-sha256": empty,
        "Authorization": f"AWS4-HMAC-SHA256 Credential={key}/{scope}, SignedHeaders={signed}, "
                         f"Signature={signature}"})
    try:
        with urllib.request.urlopen(request, timeout=3) as response:
            return int(response.status)
    except urllib.error.HTTPError as exc:
        return int(exc.code)

"""The backup store: an S3 bucket (R2, AWS, MinIO, SeaweedFS) or a folder.

A part is written from a stream in chunks (S3: the parts of one multipart upload, several
in flight at once; a folder: a hidden temporary file), each chunk hashed on the way. It
becomes visible only on `commit`; an exception inside the writer aborts the upload (or
deletes the temporary file), so a stream cut off half-way never leaves an object that
looks complete.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import threading
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, Protocol

from envplane.dr.config import StoreUrl
from envplane.dr.manifest import Chunk, Part
from envplane.errors import BackendError
from envplane.secret import Secret, mask

CHUNK = 16 * 1024 * 1024  # S3 wants at least 5 MiB per part but the last
IN_FLIGHT = 3  # chunks uploading at once (each held in memory)


@dataclass
class Written:
    size: int = 0
    chunks: list[Chunk] = field(default_factory=list)
    whole: Any = field(default_factory=hashlib.sha256)

    @property
    def sha256(self) -> str:
        return str(self.whole.hexdigest())


def read_full(stream: IO[bytes], size: int) -> bytes:
    """Up to `size` bytes: fewer only at the end of the stream."""
    pieces, left = [], size
    while left:
        piece = stream.read(left)
        if not piece:
            break
        pieces.append(piece)
        left -= len(piece)
    return b"".join(pieces)


class Writer(Protocol):
    def write_from(self, stream: IO[bytes]) -> Written: ...


class BackupStore(Protocol):
    where: str

    def writer(self, key: str) -> Any:
        """A context manager giving a Writer; committed when the block ends without error."""

    def put_bytes(self, key: str, data: bytes) -> None: ...

    def get_bytes(self, key: str) -> bytes | None: ...

    def read_chunks(self, key: str, part: Part) -> Iterator[bytes]:
        """The stored object in the manifest's chunks, as stored (unchecked)."""

    def children(self, prefix: str) -> list[str]:
        """Names of the folders directly under prefix."""

    def delete_folder(self, prefix: str) -> int: ...


def open_store(url: StoreUrl, endpoint: str | None = None, access_key: str | None = None,
               secret_key: Secret | None = None) -> BackupStore:
    if url.kind == "file":
        return FolderStore(Path(url.prefix))
    if not (endpoint and access_key and secret_key):
        raise BackendError(f"backup store {url.text} needs an S3 server, and none is configured",
                           "set ENVPLANE_S3_ENDPOINT, ENVPLANE_S3_ACCESS_KEY and ENVPLANE_S3_SECRET_KEY "
                           "(or the env's servers: s3_endpoint, s3_access_key, s3_secret_key)")
    return S3BackupStore(url, endpoint, access_key, secret_key)


# --- a folder -------------------------------------------------------------------------


class _FolderWriter:
    def __init__(self, temp: IO[bytes]) -> None:
        self.temp = temp

    def write_from(self, stream: IO[bytes]) -> Written:
        written = Written()
        while chunk := read_full(stream, CHUNK):
            self.temp.write(chunk)
            _count(written, chunk)
        if not written.chunks:
            _count(written, b"")
        return written


class FolderStore:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.where = f"file://{root}"

    def _path(self, key: str) -> Path:
        path = (self.root / key).resolve()
        if not path.is_relative_to(self.root.resolve()):
            raise BackendError(f"backup key {key!r} leaves the store {self.root}")
        return path

    @contextmanager
    def writer(self, key: str) -> Iterator[_FolderWriter]:
        path = self._path(key)
        _private_dirs(path.parent)
        temp_path = path.with_name(f".{path.name}.partial-{os.getpid()}-{threading.get_ident()}")
        fd = os.open(temp_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            with os.fdopen(fd, "wb") as temp:
                yield _FolderWriter(temp)
                temp.flush()
                os.fsync(temp.fileno())
            os.replace(temp_path, path)
        finally:
            temp_path.unlink(missing_ok=True)

    def put_bytes(self, key: str, data: bytes) -> None:
        with self.writer(key) as writer:
            import io

            writer.write_from(io.BytesIO(data))

    def get_bytes(self, key: str) -> bytes | None:
        try:
            return self._path(key).read_bytes()
        except FileNotFoundError:
            return None

    def read_chunks(self, key: str, part: Part) -> Iterator[bytes]:
        try:
            with self._path(key).open("rb") as stored:
                for _start, chunk in part.offsets():
                    yield read_full(stored, chunk.size)
                if stored.read(1):
                    yield stored.read()  # longer than the manifest says: an extra "chunk"
        except FileNotFoundError:
            raise BackendError(f"part {part.kind} ({key}) is missing from {self.where}") from None

    def children(self, prefix: str) -> list[str]:
        folder = self._path(prefix) if prefix else self.root
        if not folder.is_dir():
            return []
        return sorted(p.name for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))

    def delete_folder(self, prefix: str) -> int:
        folder = self._path(prefix)
        if folder == self.root.resolve() or not folder.exists():
            return 0
        count = sum(1 for p in folder.rglob("*") if p.is_file())
        shutil.rmtree(folder)
        return count


def _private_dirs(path: Path) -> None:
    path.mkdir(parents=True, exist_ok=True, mode=0o700)


# --- S3 ----------------------------------------------------------------------------


class _S3Writer:
    def __init__(self, store: S3BackupStore, key: str, upload_id: str) -> None:
        self.store, self.key, self.upload_id = store, key, upload_id
        self.etags: list[dict[str, Any]] = []

    def write_from(self, stream: IO[bytes]) -> Written:
        written = Written()
        slots = threading.BoundedSemaphore(IN_FLIGHT)
        futures: list[Future[dict[str, Any]]] = []
        with ThreadPoolExecutor(IN_FLIGHT) as pool:
            number = 0
            while True:
                slots.acquire()
                chunk = read_full(stream, CHUNK)
                if not chunk and number > 0:
                    slots.release()
                    break
                number += 1
                _count(written, chunk)
                futures.append(pool.submit(self._upload, number, chunk, slots))
                if any(f.done() and f.exception() for f in futures):
                    break
            self.etags = [f.result() for f in futures]  # raises the first upload's error
        return written

    def _upload(self, number: int, chunk: bytes, slots: threading.BoundedSemaphore) -> dict[str, Any]:
        try:
            store = self.store
            answer = store.call(f"upload part {number} of {self.key}", lambda: store.client.upload_part(
                Bucket=store.bucket, Key=store.full(self.key), UploadId=self.upload_id,
                PartNumber=number, Body=chunk))
            return {"PartNumber": number, "ETag": answer["ETag"]}
        finally:
            slots.release()


class S3BackupStore:
    def __init__(self, url: StoreUrl, endpoint: str, access_key: str, secret_key: Secret) -> None:
        import boto3  # type: ignore[import-untyped]
        from botocore.config import Config  # type: ignore[import-untyped]

        self.bucket, self.prefix = url.bucket, url.prefix
        self.endpoint, self.access_key, self._secret = endpoint, access_key, secret_key
        self.where = url.text
        self.client: Any = boto3.client(
            "s3", endpoint_url=endpoint or None, aws_access_key_id=access_key,
            aws_secret_access_key=secret_key.reveal(), region_name="us-east-1",
            config=Config(connect_timeout=5, read_timeout=120, retries={"max_attempts": 3},
                          s3={"addressing_style": "path"}, max_pool_connections=IN_FLIGHT + 2))
        self._bucket_checked = False

    def full(self, key: str) -> str:
        return f"{self.prefix}/{key}" if self.prefix else key

    def call(self, what: str, action: Any) -> Any:
        from botocore.exceptions import BotoCoreError, ClientError  # type: ignore[import-untyped]

        try:
            return action()
        except ClientError as err:
            code = str(err.response.get("Error", {}).get("Code", ""))
            raise BackendError(f"backup store {self.where} refused to {what}: {code} "
                               f"{mask(str(err), [self._secret])}",
                               "check the S3 key's permissions on the backup bucket") from None
        except BotoCoreError as err:
            raise BackendError(f"cannot reach the backup store at {self.endpoint} to {what}: "
                               f"{mask(str(err), [self._secret])}",
                               "is the S3 server running and its endpoint right?") from None

    def _ensure_bucket(self) -> None:
        from botocore.exceptions import ClientError

        if self._bucket_checked:
            return
        try:
            self.client.head_bucket(Bucket=self.bucket)
        except ClientError as err:
            if str(err.response.get("Error", {}).get("Code", "")) not in {"404", "NoSuchBucket", "NotFound"}:
                raise BackendError(f"backup store {self.where}: cannot look at bucket {self.bucket}: "
                                   f"{mask(str(err), [self._secret])}") from None
            self.call(f"create bucket {self.bucket}", lambda: self.client.create_bucket(Bucket=self.bucket))
        self._bucket_checked = True

    @contextmanager
    def writer(self, key: str) -> Iterator[_S3Writer]:
        self._ensure_bucket()
        answer = self.call(f"start the upload of {key}", lambda: self.client.create_multipart_upload(
            Bucket=self.bucket, Key=self.full(key)))
        writer = _S3Writer(self, key, answer["UploadId"])
        try:
            yield writer
        except BaseException:
            with contextlib.suppress(Exception):  # the upload's own error is the one to report
                self.client.abort_multipart_upload(Bucket=self.bucket, Key=self.full(key),
                                                   UploadId=writer.upload_id)
            raise
        self.call(f"complete the upload of {key}", lambda: self.client.complete_multipart_upload(
            Bucket=self.bucket, Key=self.full(key), UploadId=writer.upload_id,
            MultipartUpload={"Parts": writer.etags}))

    def put_bytes(self, key: str, data: bytes) -> None:
        self._ensure_bucket()
        self.call(f"write {key}", lambda: self.client.put_object(Bucket=self.bucket, Key=self.full(key),
                                                                 Body=data))

    def get_bytes(self, key: str) -> bytes | None:
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            return bytes(self.client.get_object(Bucket=self.bucket, Key=self.full(key))["Body"].read())
        except ClientError as err:
            if str(err.response.get("Error", {}).get("Code", "")) in {"404", "NoSuchKey", "NoSuchBucket"}:
                return None
            raise BackendError(f"backup store {self.where}: cannot read {key}: "
                               f"{mask(str(err), [self._secret])}") from None
        except BotoCoreError as err:
            raise BackendError(f"cannot reach the backup store at {self.endpoint}: "
                               f"{mask(str(err), [self._secret])}") from None

    def read_chunks(self, key: str, part: Part) -> Iterator[bytes]:
        size = self.stored_size(key)
        if size is None:
            raise BackendError(f"part {part.kind} ({key}) is missing from {self.where}")
        for start, chunk in part.offsets():
            if chunk.size == 0:
                yield b""
                continue
            yield self.call(f"read {key}", lambda s=start, c=chunk: self.client.get_object(
                Bucket=self.bucket, Key=self.full(key), Range=f"bytes={s}-{s + c.size - 1}")["Body"].read())
        if size > part.size:
            yield b"\0" * (size - part.size)  # stands for the extra bytes: never matches

    def children(self, prefix: str) -> list[str]:
        self._ensure_bucket()
        base = self.full(prefix).rstrip("/") + "/" if prefix or self.prefix else ""
        names: list[str] = []
        paginator = self.client.get_paginator("list_objects_v2")
        pages = self.call(f"list {base}", lambda: list(paginator.paginate(Bucket=self.bucket, Prefix=base,
                                                                          Delimiter="/")))
        for page in pages:
            names += [p["Prefix"][len(base):].rstrip("/") for p in page.get("CommonPrefixes", [])]
        return sorted(names)

    def delete_folder(self, prefix: str) -> int:
        if not prefix:
            raise BackendError("refusing to delete the backup store's root")
        base = self.full(prefix).rstrip("/") + "/"
        paginator = self.client.get_paginator("list_objects_v2")
        keys = [item["Key"] for page in self.call(f"list {base}", lambda: list(
            paginator.paginate(Bucket=self.bucket, Prefix=base))) for item in page.get("Contents", [])]
        for start in range(0, len(keys), 1000):
            batch = [{"Key": k} for k in keys[start:start + 1000]]
            self.call(f"delete {base}", lambda b=batch: self.client.delete_objects(
                Bucket=self.bucket, Delete={"Objects": b, "Quiet": True}))
        return len(keys)

    def stored_size(self, key: str) -> int | None:
        from botocore.exceptions import ClientError

        try:
            return int(self.client.head_object(Bucket=self.bucket, Key=self.full(key))["ContentLength"])
        except ClientError as err:
            if str(err.response.get("Error", {}).get("Code", "")) in {"404", "NoSuchKey", "NotFound"}:
                return None
            raise BackendError(f"backup store {self.where}: cannot look at {key}: "
                               f"{mask(str(err), [self._secret])}") from None


def _count(written: Written, chunk: bytes) -> None:
    written.size += len(chunk)
    written.chunks.append(Chunk(len(chunk), hashlib.sha256(chunk).hexdigest()))
    written.whole.update(chunk)


def verify_part(store: BackupStore, folder: str, part: Part) -> str | None:
    """Read the stored part back chunk by chunk; None when every chunk matches the manifest,
    else what differs (naming the part and the chunk)."""
    from envplane.dr.manifest import check_chunks

    found = [Chunk(len(data), hashlib.sha256(data).hexdigest())
             for data in store.read_chunks(f"{folder}/{part.key}", part)]
    return check_chunks(part, found)

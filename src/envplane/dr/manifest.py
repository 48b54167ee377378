"""What a backup is, as stored beside its parts: the manifest (pure; no I/O here).

A backup of one instance lives under `{root}/{app}/{instance}/{id}/` of its store: one
object per part (`postgres.dump.zst.age`, `data.tar.zst.age`, `bucket.tar.zst.age`,
`secrets.json.zst.age`) and `manifest.json`, written last. A backup without a manifest
is not a backup: it was cut off (its parts are deleted when the run sees it fail).

The manifest is plain JSON, readable without the key: it holds names, times, sizes and
SHA-256 checksums, never data. Every part is a sequence of chunks (the multipart upload's
parts), each with its own size and SHA-256, so a restore checks every byte before it
writes anything, and names the part and chunk that differ.
"""

from __future__ import annotations

import json
import re
import secrets
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

FORMAT = 1
MANIFEST = "manifest.json"
_ID = re.compile(r"^(\d{8}T\d{6})(\.\d{3})?Z-([0-9a-f]{6})$")

# The part kinds, in the order a backup writes them and a restore reads them: secrets
# first (the database role is made again with its restored password).
KINDS = ("secrets", "postgres", "data", "bucket")
OBJECT_NAMES = {
    "secrets": "secrets.json.zst.age",
    "postgres": "postgres.dump.zst.age",
    "data": "data.tar.zst.age",
    "bucket": "bucket.tar.zst.age",
}


@dataclass(frozen=True)
class Chunk:
    size: int
    sha256: str


@dataclass(frozen=True)
class Part:
    kind: str  # one of KINDS
    key: str  # object name inside the backup's folder
    size: int
    sha256: str  # of the whole stored object
    chunks: tuple[Chunk, ...]
    source: str = ""  # what it holds: the database name, the folder, the bucket, the secret path

    def offsets(self) -> list[tuple[int, Chunk]]:
        """(start byte, chunk) of every chunk, in order."""
        found, start = [], 0
        for chunk in self.chunks:
            found.append((start, chunk))
            start += chunk.size
        return found


@dataclass(frozen=True)
class Manifest:
    id: str
    app: str
    env: str
    instance: str
    started_at: datetime  # when the first part began: the data is at least this fresh
    finished_at: datetime
    parts: tuple[Part, ...]
    recipients: tuple[str, ...]
    tools: Mapping[str, str] = field(default_factory=dict)
    release: str | None = None
    verified_at: datetime | None = None  # every stored chunk read back and matched
    format: int = FORMAT

    @property
    def size(self) -> int:
        return sum(p.size for p in self.parts)

    def part(self, kind: str) -> Part | None:
        return next((p for p in self.parts if p.kind == kind), None)

    def verified(self, at: datetime) -> Manifest:
        return replace(self, verified_at=at)


def new_id(now: datetime) -> str:
    """`20261202T004420.517Z-3fa9c1`: sorts by time to the millisecond (backups made
    within one second must still list newest first); the random tail keeps two runs apart.
    Ids without milliseconds, from before, stay valid."""
    now = now.astimezone(UTC)
    return f"{now:%Y%m%dT%H%M%S}.{now.microsecond // 1000:03d}Z-{secrets.token_hex(3)}"


def id_time(backup_id: str) -> datetime | None:
    match = _ID.match(backup_id)
    if match is None:
        return None
    at = datetime.strptime(match.group(1), "%Y%m%dT%H%M%S").replace(tzinfo=UTC)
    return at.replace(microsecond=int(match.group(2)[1:]) * 1000) if match.group(2) else at


def valid_id(backup_id: str) -> bool:
    return _ID.match(backup_id) is not None


def folder(app: str, instance: str, backup_id: str = "") -> str:
    """The backup's folder inside the store's root (no leading or trailing slash)."""
    return "/".join(p for p in (app, instance, backup_id) if p)


def to_json(manifest: Manifest) -> bytes:
    data = asdict(manifest)
    for key in ("started_at", "finished_at", "verified_at"):
        value = data[key]
        data[key] = value.astimezone(UTC).isoformat() if value is not None else None
    return (json.dumps(data, indent=2, sort_keys=True) + "\n").encode()


class ManifestError(ValueError):
    """A manifest that is not one this envplane can read."""


def from_json(raw: bytes) -> Manifest:
    try:
        data: dict[str, Any] = json.loads(raw)
        if data.get("format") != FORMAT:
            raise ManifestError(f"manifest format {data.get('format')!r} (this envplane reads {FORMAT})")
        parts = tuple(_part(p) for p in data["parts"])
        return Manifest(
            id=str(data["id"]), app=str(data["app"]), env=str(data["env"]),
            instance=str(data["instance"]),
            started_at=_time(data["started_at"]), finished_at=_time(data["finished_at"]),
            parts=parts, recipients=tuple(data.get("recipients") or ()),
            tools=dict(data.get("tools") or {}), release=data.get("release"),
            verified_at=_time(data["verified_at"]) if data.get("verified_at") else None,
        )
    except ManifestError:
        raise
    except (ValueError, KeyError, TypeError) as exc:
        raise ManifestError(f"unreadable manifest: {type(exc).__name__}: {exc}") from None


def _part(data: Mapping[str, Any]) -> Part:
    kind = str(data["kind"])
    if kind not in KINDS:
        raise ManifestError(f"unknown part kind {kind!r}")
    key = str(data["key"])
    if "/" in key or key.startswith("."):
        raise ManifestError(f"part key {key!r} leaves the backup's folder")
    chunks = tuple(Chunk(int(c["size"]), str(c["sha256"])) for c in data["chunks"])
    if sum(c.size for c in chunks) != int(data["size"]):
        raise ManifestError(f"part {kind}: its chunks do not add up to its size")
    return Part(kind, key, int(data["size"]), str(data["sha256"]), chunks, str(data.get("source") or ""))


def _time(text: str) -> datetime:
    moment = datetime.fromisoformat(text)
    if moment.tzinfo is None:
        raise ValueError(f"time {text!r} has no zone")
    return moment.astimezone(UTC)


def check_chunks(part: Part, found: Sequence[Chunk]) -> str | None:
    """None when `found` (read back from the store) is what the manifest says; else what
    differs, naming the part and the chunk."""
    if len(found) != len(part.chunks):
        return (f"part {part.kind} ({part.key}) has {len(found)} chunk(s), "
                f"the manifest says {len(part.chunks)}")
    for index, (want, got) in enumerate(zip(part.chunks, found, strict=True)):
        if want != got:
            return (f"part {part.kind} ({part.key}), chunk {index + 1} of {len(part.chunks)}: "
                    f"sha256 {got.sha256[:12]}… size {got.size}, the manifest says "
                    f"{want.sha256[:12]}… size {want.size}")
    return None

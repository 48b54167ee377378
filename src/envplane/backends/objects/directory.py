"""The embedded object store: one folder per instance, named like its bucket."""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

from envplane.backends.database.change import Change, create, delete, noop
from envplane.backends.objects.names import check_bucket
from envplane.private import make_dirs


@dataclass(frozen=True)
class FolderFacts:
    name: str
    path: Path
    exists: bool

    def keys(self) -> frozenset[str]:
        return frozenset({f"bucket:{self.name}"} if self.exists else set())


class DirectoryStore:
    def __init__(self, root: Path) -> None:
        self._root = root

    def path(self, bucket: str) -> Path:
        # check_bucket refuses '/' and leading dots, so a name never leaves the root.
        return self._root / check_bucket(bucket)

    def observe(self, bucket: str) -> FolderFacts:
        path = self.path(bucket)
        return FolderFacts(bucket, path, path.is_dir())

    def ensure(self, bucket: str) -> list[Change]:
        facts = self.observe(bucket)
        if facts.exists:
            return [noop(f"folder {bucket}", f"reuse folder {bucket}")]
        make_dirs(facts.path)
        return [create(f"folder {bucket}")]

    def purge(self, bucket: str) -> list[Change]:
        facts = self.observe(bucket)
        if not facts.exists:
            return [noop(f"folder {bucket}", f"folder {bucket} does not exist")]
        count = sum(1 for p in facts.path.rglob("*") if p.is_file())
        shutil.rmtree(facts.path)
        return [delete(f"folder {bucket}", f"{count} files removed, folder deleted")]

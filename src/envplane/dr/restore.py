"""`envplane restore ENV --from ID|latest [--to ENV2]`: a backup back into an instance.

Before anything is written, every chunk of every part is read from the store and checked
against the manifest: a mismatch refuses the restore and names the part and the chunk.
Then, under the target instance's lock (lifecycle.deploy: one audited operation): stop
the app, restore its secrets (so the database role is made again with its own password),
provision what is missing, restore the database (into a new database, swapped in when
complete: dr/database.py), the data folder (extracted beside it, swapped in) and the
bucket's objects, then `up` and wait until healthy.

Into another instance (`--to`), a backup brings its user secrets but never the source's
generated credentials (database password, S3 key, Redis password): the target keeps its
own, so no credential of one instance ever opens another's resources.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from envplane.commands import backup as cmd
from envplane.dr import manifest as mf
from envplane.dr.manifest import Manifest, ManifestError, Part
from envplane.dr.resources import GENERATED, Reach
from envplane.dr.store import BackupStore, verify_part
from envplane.dr.streams import Feeder, checked_chunks
from envplane.errors import BackendError, UsageError
from envplane.private import make_dirs
from envplane.run import Pipeline, Stage
from envplane.secret import Secret

OnPart = Callable[[str, str, float, int], None]


@dataclass(frozen=True)
class Listed:
    """One folder of the store: a backup with its manifest, or what is wrong with it."""

    id: str
    manifest: Manifest | None
    problem: str | None = None


def listed(store: BackupStore, app: str, instance: str) -> list[Listed]:
    """Every backup of the instance in the store, newest first. A folder without a
    manifest (a run cut off before it could clean up) is listed as incomplete."""
    found = []
    for backup_id in store.children(mf.folder(app, instance)):
        if not mf.valid_id(backup_id):
            continue
        raw = store.get_bytes(f"{mf.folder(app, instance, backup_id)}/{mf.MANIFEST}")
        if raw is None:
            found.append(Listed(backup_id, None, "incomplete: no manifest"))
            continue
        try:
            manifest = mf.from_json(raw)
        except ManifestError as exc:
            found.append(Listed(backup_id, None, str(exc)))
            continue
        if (manifest.id, manifest.app, manifest.instance) != (backup_id, app, instance):
            found.append(Listed(backup_id, None, "its manifest names another backup"))
            continue
        found.append(Listed(backup_id, manifest))
    return sorted(found, key=lambda item: item.id, reverse=True)


def choose(store: BackupStore, app: str, instance: str, which: str) -> Manifest:
    """The backup `which` names: an id, or `latest` (the newest verified one)."""
    backups = listed(store, app, instance)
    if which == "latest":
        good = [b.manifest for b in backups if b.manifest is not None and b.manifest.verified_at]
        if not good:
            raise BackendError(f"no verified backup of {app} {instance} in {store.where}",
                               f"make one: envplane backup {instance.split('-')[0]}")
        return good[0]
    check_backup_id(which)
    match = next((b for b in backups if b.id == which), None)
    if match is None or match.manifest is None:
        why = f" ({match.problem})" if match is not None else ""
        raise BackendError(f"backup {which} of {app} {instance} is not in {store.where}{why}",
                           "see `envplane backups ENV`")
    return match.manifest


def check_before_restore(store: BackupStore, manifest: Manifest) -> None:
    """Read every stored chunk; refuse (naming the part and chunk) on any difference."""
    folder = mf.folder(manifest.app, manifest.instance, manifest.id)
    for part in manifest.parts:
        problem = verify_part(store, folder, part)
        if problem is not None:
            raise BackendError(f"refusing to restore backup {manifest.id}: {problem}",
                               "the stored bytes differ from what was backed up; nothing was changed. "
                               "Restore another backup (envplane backups ENV)")


def _decrypting(identity: Path, *after: Stage) -> list[Stage]:
    return [Stage(tuple(cmd.age_decrypt(str(identity)))), Stage(tuple(cmd.zstd_decompress())), *after]


def _stream_into(store: BackupStore, manifest: Manifest, part: Part, identity: Path,
                 after: list[Stage], secrets: list[Secret], drain: Callable[[IO[bytes]], Any] | None) -> Any:
    """Feed the part through `age -d | zstd -d | after…`; `drain` reads the last stage's output."""
    key = f"{mf.folder(manifest.app, manifest.instance, manifest.id)}/{part.key}"
    stages = _decrypting(identity, *after)
    with Pipeline(stages, feed=True, drain=drain is not None, secrets=secrets,
                  what=f"restore of {part.kind}") as pipe:
        assert pipe.stdin is not None
        reader = Feeder(pipe.stdin, checked_chunks(store.read_chunks(key, part), part))
        reader.start()
        try:
            result = drain(pipe.stdout) if drain is not None and pipe.stdout is not None else None
        except Exception:
            pipe.kill()
            reader.join()
            pipe.finish()  # the stage that failed explains it better than a truncated stream
            raise
        reader.join()
        pipe.finish()
        reader.check()
    return result


def restore_secrets(reach: Reach, store: BackupStore, manifest: Manifest, identity: Path) -> int:
    part = manifest.part("secrets")
    if part is None:
        return 0
    data: dict[str, dict[str, str]] = json.loads(
        _stream_into(store, manifest, part, identity, [], [], lambda out: out.read()))
    target, secrets = reach.target, reach.secrets
    same = manifest.app == target.app and manifest.instance == target.id
    source = part.source.rstrip("/")
    if same:
        secrets.delete_tree(target.secrets_prefix)
    written = 0
    for path, values in sorted(data.items()):
        if not (path == source or path.startswith(source + "/")):
            continue  # never write outside the instance's own prefix
        rest = path[len(source):]
        if not same and rest.strip("/") in GENERATED:
            values = {k: v for k, v in values.items() if k not in GENERATED[rest.strip("/")]}
        if values:
            secrets.write(target.secrets_prefix + rest, {k: Secret(v) for k, v in values.items()})
            written += 1
    return written


def restore_database(reach: Reach, store: BackupStore, manifest: Manifest, identity: Path) -> None:
    from envplane.dr import database

    part = manifest.part("postgres")
    name = reach.target.database
    if part is None or name is None or not reach.has_database():
        return
    admin = reach.servers.postgres_url
    assert admin is not None

    def load(temp: str) -> None:
        conninfo, password = reach.database_conninfo(temp)
        restore = Stage(tuple(cmd.pg_restore(conninfo)), {"PGPASSWORD": password.reveal()})
        _stream_into(store, manifest, part, identity, [restore], [password, admin], None)

    database.restore(admin, name, load)


def restore_data(reach: Reach, store: BackupStore, manifest: Manifest, identity: Path) -> None:
    """Extract beside the data folder, then swap the new folder in (the app is stopped)."""
    part = manifest.part("data")
    if part is None:
        return
    path = reach.data_path()
    make_dirs(path.parent)  # a local env's data path is under .envplane/: private first
    fresh = path.with_name(f".{path.name}.restore-{manifest.id}")
    old = path.with_name(f".{path.name}.old-{manifest.id}")
    for leftover in (fresh, old):  # of a restore of this backup killed half-way
        if leftover.exists():
            shutil.rmtree(leftover)
    fresh.mkdir(mode=0o700)
    try:
        _stream_into(store, manifest, part, identity, [Stage(tuple(cmd.tar_extract(str(fresh))))], [], None)
    except BaseException:
        shutil.rmtree(fresh, ignore_errors=True)
        raise
    if path.exists():
        os.replace(path, old)
    os.replace(fresh, path)
    shutil.rmtree(old, ignore_errors=True)


def restore_bucket(reach: Reach, store: BackupStore, manifest: Manifest, identity: Path) -> int:
    from envplane.dr import objects

    part = manifest.part("bucket")
    if part is None or not reach.has_bucket():
        return 0
    client, bucket = reach.s3_client(), str(reach.target.bucket)
    objects.empty(client, bucket)
    return int(_stream_into(store, manifest, part, identity, [], [],
                            lambda out: objects.load(client, bucket, out)))


def restore_parts(reach: Reach, store: BackupStore, manifest: Manifest, identity: Path,
                  provision: Callable[[], object], on_part: OnPart,
                  database: Callable[[], None] | None = None) -> None:
    """Secrets, provisioning, then the database (or `database`, a point-in-time restore),
    the data folder and the bucket, each reported through on_part."""
    def step(kind: str, action: Callable[[], object]) -> None:
        began = time.monotonic()
        try:
            action()
        except BaseException:
            on_part(kind, "failed", time.monotonic() - began, 0)
            raise
        part = manifest.part(kind)
        on_part(kind, "ok", time.monotonic() - began, part.size if part else 0)

    step("secrets", lambda: restore_secrets(reach, store, manifest, identity))
    step("provision", provision)
    if database is not None:
        step("postgres", database)
    else:
        step("postgres", lambda: restore_database(reach, store, manifest, identity))
    step("data", lambda: restore_data(reach, store, manifest, identity))
    step("bucket", lambda: restore_bucket(reach, store, manifest, identity))


def needs_confirmation(lifecycle: str, running: bool) -> bool:
    """Restoring over a running instance that is meant to last (staging, production)."""
    return running and lifecycle.startswith("persistent")


def summary(manifest: Manifest) -> Mapping[str, Any]:
    return {"backup": manifest.id, "env": manifest.env, "instance": manifest.instance,
            "release": manifest.release, "data_at": manifest.started_at.isoformat(),
            "parts": {p.kind: p.size for p in manifest.parts}}


def check_backup_id(which: str) -> None:
    """`latest`, or a backup id's shape: anything else is bad input, refused before any look."""
    if which != "latest" and not mf.valid_id(which):
        raise UsageError(f"{which!r} is not a backup id", "ids look like 20261202T004420Z-3fa9c1; "
                         "see `envplane backups ENV`, or pass --from latest")

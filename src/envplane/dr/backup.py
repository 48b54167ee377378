"""`envplane backup ENV`: everything one instance owns, streamed, compressed, encrypted,
uploaded, described by a manifest, read back and verified (issue 13).

Each part is a pipeline `source | zstd | age -r …` whose output goes straight into the
store's multipart upload: no temporary file holds data. The source is pg_dump (the
instance's database, as its own role), tar (its data folder), or envplane itself (its
bucket's objects as a tar stream, its secrets as JSON). A stage that fails — pg_dump
killed half-way — fails the pipeline, the upload is aborted, the parts already stored
are deleted, and no manifest is written: nothing that looks like a backup is left.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import IO

from envplane.commands import backup as cmd
from envplane.dr import manifest as mf
from envplane.dr.manifest import Manifest, Part
from envplane.dr.resources import Reach
from envplane.dr.store import BackupStore, verify_part
from envplane.dr.streams import Feeder
from envplane.errors import EnvplaneError
from envplane.run import Pipeline, Stage, run
from envplane.secret import Secret
from envplane.state.clock import Clock, utc_now

OnPart = Callable[[str, str, float, int], None]  # (kind, "ok" | "skip" | "failed", seconds, bytes)


@dataclass(frozen=True)
class BackupResult:
    manifest: Manifest
    seconds: float
    problem: str | None  # verification found a difference (the backup is not good)


def store_part(store: BackupStore, folder: str, kind: str, source: str, stages: Sequence[Stage],
               recipients: Sequence[str], secrets: Sequence[Secret] = (),
               produce: Callable[[IO[bytes]], object] | None = None) -> Part:
    """Run `stages | zstd | age` (after `produce` writing into the first stage, if given)
    into the part's object; raise, leaving no object, when anything fails."""
    name = mf.OBJECT_NAMES[kind]
    chain = [*stages, Stage(tuple(cmd.zstd_compress())), Stage(tuple(cmd.age_encrypt(recipients)))]
    with Pipeline(chain, feed=produce is not None, secrets=secrets, what=f"backup of {kind}") as pipe:
        assert pipe.stdout is not None
        feeder = Feeder(pipe.stdin, produce) if produce is not None and pipe.stdin is not None else None
        if feeder is not None:
            feeder.start()
        with store.writer(f"{folder}/{name}") as writer:
            written = writer.write_from(pipe.stdout)
            if feeder is not None:
                feeder.check()
            pipe.finish()  # a failed stage raises here, inside the writer: the upload is aborted
    return Part(kind, name, written.size, written.sha256, tuple(written.chunks), source)


def secrets_json(reach: Reach) -> bytes:
    """Every secret of the instance, {path: {key: value}}: only ever piped into age."""
    store = reach.secrets
    found = {path: {k: v.reveal() for k, v in store.read(path).items()}
             for path in store.list(reach.target.secrets_prefix)}
    return json.dumps(found, sort_keys=True).encode()


def backup(reach: Reach, store: BackupStore, recipients: Sequence[str], actor_release: str | None,
           on_part: OnPart = lambda kind, state, seconds, size: None, clock: Clock = utc_now,
           backup_id: str | None = None) -> BackupResult:
    """Back up every part of the instance; then write its manifest, read it back, verify."""
    target = reach.target
    started = clock()
    began = time.monotonic()
    backup_id = backup_id or mf.new_id(started)
    folder = mf.folder(target.app, target.id, backup_id)
    parts: list[Part] = []
    try:
        for kind, make in _plan(reach):
            part_began = time.monotonic()
            try:
                part = make(store, folder, recipients)
            except EnvplaneError:
                on_part(kind, "failed", time.monotonic() - part_began, 0)
                raise
            parts.append(part)
            on_part(kind, "ok", time.monotonic() - part_began, part.size)
        manifest = Manifest(id=backup_id, app=target.app, env=target.env.name, instance=target.id,
                            started_at=started, finished_at=clock(), parts=tuple(parts),
                            recipients=tuple(recipients), tools=tool_versions(), release=actor_release)
        store.put_bytes(f"{folder}/{mf.MANIFEST}", mf.to_json(manifest))
    except BaseException:
        store.delete_folder(folder)  # the parts already stored: without a manifest they are no backup
        raise
    problem = verify(store, manifest)
    if problem is None:
        manifest = manifest.verified(clock())
        store.put_bytes(f"{folder}/{mf.MANIFEST}", mf.to_json(manifest))
    return BackupResult(manifest, time.monotonic() - began, problem)


def verify(store: BackupStore, manifest: Manifest) -> str | None:
    """Read every stored chunk back; None when all match the manifest."""
    folder = mf.folder(manifest.app, manifest.instance, manifest.id)
    for part in manifest.parts:
        problem = verify_part(store, folder, part)
        if problem is not None:
            return problem
    return None


PartMaker = Callable[[BackupStore, str, Sequence[str]], Part]


def _plan(reach: Reach) -> list[tuple[str, PartMaker]]:
    """The parts this instance has, in manifest order."""
    target = reach.target
    plan: list[tuple[str, PartMaker]] = []

    def secrets_part(store: BackupStore, folder: str, recipients: Sequence[str]) -> Part:
        data = secrets_json(reach)
        return store_part(store, folder, "secrets", target.secrets_prefix, [], recipients,
                          produce=lambda sink: sink.write(data))

    plan.append(("secrets", secrets_part))
    if reach.has_database() and reach.database_exists():  # one never made has nothing to keep
        def database_part(store: BackupStore, folder: str, recipients: Sequence[str]) -> Part:
            conninfo, password = reach.database_conninfo()
            dump = Stage(tuple(cmd.pg_dump(conninfo)), {"PGPASSWORD": password.reveal()})
            return store_part(store, folder, "postgres", str(target.database), [dump], recipients,
                              secrets=[password])

        plan.append(("postgres", database_part))
    if reach.data_path().is_dir():
        def data_part(store: BackupStore, folder: str, recipients: Sequence[str]) -> Part:
            path = str(reach.data_path())
            return store_part(store, folder, "data", path, [Stage(tuple(cmd.tar_create(path)))], recipients)

        plan.append(("data", data_part))
    if reach.has_bucket() and reach.bucket_exists():
        def bucket_part(store: BackupStore, folder: str, recipients: Sequence[str]) -> Part:
            from envplane.dr import objects

            client, bucket = reach.s3_client(), str(target.bucket)
            return store_part(store, folder, "bucket", bucket, [], recipients,
                              produce=lambda sink: objects.dump(client, bucket, sink))

        plan.append(("bucket", bucket_part))
    return plan


_VERSIONS: dict[str, str] = {}


def tool_versions() -> Mapping[str, str]:
    """The first line of each tool's --version, for the manifest (asked once per process)."""
    if not _VERSIONS:
        from envplane import __version__

        _VERSIONS["envplane"] = __version__
        for name, args in cmd.VERSION_COMMANDS.items():
            found = run(args, check=False, what=f"{name} --version")
            text = (found.stdout or found.stderr).strip().splitlines()
            _VERSIONS[name] = text[0] if found.returncode == 0 and text else "?"
    return dict(_VERSIONS)


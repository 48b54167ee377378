"""The DR operations every interface calls: backup, list, prune, restore, status, due.

They take a lifecycle.Session (the state store and who acts), report progress through
callbacks, audit what they change, and never print.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from envplane import actions
from envplane.dr import manifest as mf
from envplane.dr import retention, schedule
from envplane.dr.backup import BackupResult, OnPart, backup
from envplane.dr.config import DrConfig, dr_config
from envplane.dr.keys import recipients
from envplane.dr.resources import Reach
from envplane.dr.restore import Listed, listed
from envplane.dr.store import BackupStore, open_store
from envplane.errors import BackendError, EnvplaneError
from envplane.lifecycle import Session, known_instances
from envplane.spec.load import Project
from envplane.state import backups as rows
from envplane.state import instances, releases
from envplane.state.clock import Clock, utc_now
from envplane.target import Target, resolve


@dataclass(frozen=True)
class Opened:
    """One instance with its DR settings and its backup store."""

    target: Target
    config: DrConfig
    reach: Reach
    store: BackupStore


def open_instance(project: Project, env: str, pr: int | None, environ: Mapping[str, str]) -> Opened:
    """The instance checked against the others, at the data path recorded at its first `up`
    (a restore replaces that folder: never one named by DATA_PATH in the shell)."""
    target = actions.resolve_existing(project, env, pr, None, known_instances(project, environ))
    config = dr_config(project, env, environ)
    reach = Reach(project, target, environ)
    endpoint, access, secret = reach.store_servers() if config.store.kind == "s3" else (None, None, None)
    return Opened(target, config, reach, open_store(config.store, endpoint, access, secret))


@dataclass(frozen=True)
class BackupOutcome:
    result: BackupResult
    pruned: retention.Decision | None
    archiving: str | None = None  # the platform's WAL archive, when the database is on one


def run_backup(session: Session, opened: Opened, warn: Callable[[str], None], on_part: OnPart,
               clock: Clock = utc_now) -> BackupOutcome:
    """Back up the instance, verify, record, audit; apply retention after a verified one."""
    target, store = opened.target, session.store
    keys = recipients(opened.config, target.app, opened.reach.environ, warn)
    release = _release(session, target)
    started = clock()
    backup_id = mf.new_id(started)
    rows.start_backup(store, target.app, target.env.name, target.id, backup_id, opened.store.where,
                      session.who, started, release)
    try:
        result = backup(opened.reach, opened.store, keys, release, on_part, clock, backup_id)
    except EnvplaneError as exc:
        rows.finish_backup(store, target.app, backup_id, "failed", clock(), detail={"error": exc.message})
        session.audit("backup", target, "failed", {"backup": backup_id, "error": exc.message})
        raise
    status = "verified" if result.problem is None else "corrupt"
    detail = {"parts": {p.kind: p.size for p in result.manifest.parts}, "seconds": round(result.seconds, 2)}
    if result.problem:
        detail["error"] = result.problem
    rows.finish_backup(store, target.app, backup_id, status, clock(), result.manifest.size, detail)
    session.audit("backup", target, "ok" if status == "verified" else "failed",
                  {"backup": backup_id, "store": opened.store.where, **detail})
    if result.problem is not None:
        raise BackendError(f"backup {backup_id} did not verify: {result.problem}",
                           "the store returned other bytes than were written; check the store and "
                           "run the backup again")
    pruned = prune(session, opened, dry_run=False)
    from envplane.dr import pitr

    if opened.config.store.kind != "s3" and pitr.on_platform(opened.reach):
        # A folder store (the default) holds whole backups well; pgBackRest's archive
        # needs S3. The backup stands: refusing it would also refuse every purge's final one.
        warn(f"no point-in-time recovery for {target.app} {target.id}: the platform's WAL archive "
             f"needs an s3:// backup.store, and {opened.config.store.text} is not one; this backup "
             "restores to the moment it was taken")
        return BackupOutcome(result, pruned, None)
    try:
        archiving = pitr.ensure_archiving(opened.reach, opened.config)
    except EnvplaneError as exc:
        session.audit("wal-archive", target, "failed", {"error": exc.message})
        raise BackendError(f"backup {backup_id} is verified, but WAL archiving failed: {exc.message}",
                           exc.hint) from None
    return BackupOutcome(result, pruned, archiving)


def prune(session: Session, opened: Opened, dry_run: bool) -> retention.Decision:
    """Apply the env's keep rules to the instance's backups in the store."""
    target = opened.target
    found = listed(opened.store, target.app, target.id)
    candidates = [retention.Candidate(b.id, b.manifest.started_at if b.manifest else _id_time(b.id),
                                      bool(b.manifest and b.manifest.verified_at)) for b in found]
    decision = retention.decide(candidates, opened.config.keep)
    if dry_run or not decision.delete:
        return decision
    for backup_id in decision.delete:
        opened.store.delete_folder(mf.folder(target.app, target.id, backup_id))
    rows.set_status(session.store, target.app, list(decision.delete), "deleted")
    session.audit("backup-prune", target, "ok", {"deleted": list(decision.delete),
                                                "kept": list(decision.keep)})
    return decision


def _id_time(backup_id: str) -> datetime:
    moment = mf.id_time(backup_id)
    assert moment is not None  # listed() keeps valid ids only
    return moment


def _release(session: Session, target: Target) -> str | None:
    placed = releases.history(session.store, target.app, target.env.name, target.id)
    return placed[0].version if placed else None


def backups_of(opened: Opened) -> list[Listed]:
    return listed(opened.store, opened.target.app, opened.target.id)


def single_instance_envs(project: Project) -> list[str]:
    return [name for name, env in project.envs.items() if env.instances == "one"]


def env_facts(session: Session, project: Project, env: str,
              environ: Mapping[str, str]) -> tuple[schedule.EnvFacts, str | None]:
    """The env's schedule facts, and why its store could not be read (then it counts as
    having no backup: a store that cannot be read is an alarm, never silence)."""
    target = resolve(project, env)
    config = dr_config(project, env, environ)
    record = instances.get_instance(session.store, target.app, env, target.id)
    active = record is not None and record.status not in ("down", "purged")
    problem = None
    verified: list[datetime] = []
    try:
        opened = open_instance(project, env, None, environ)
        verified = [b.manifest.started_at for b in backups_of(opened)
                    if b.manifest and b.manifest.verified_at]
    except EnvplaneError as exc:
        problem = exc.message
    runs = rows.backups(session.store, target.app, env)
    failure = next(((r.started_at, str(r.detail.get("error", "failed"))) for r in runs
                    if r.status in ("failed", "corrupt")), None)
    good_drills = [d.finished_at or d.started_at for d in rows.drills(session.store, target.app, env) if d.ok]
    facts = schedule.EnvFacts(env, config.every, config.rpo, config.drill_every, active,
                              max(verified) if verified else None, failure,
                              max(good_drills) if good_drills else None)
    return facts, problem


def status(session: Session, project: Project, environ: Mapping[str, str],
           clock: Clock = utc_now) -> tuple[list[schedule.EnvFacts], list[schedule.Alarm]]:
    facts, unreadable = [], []
    for env in single_instance_envs(project):
        if project.envs[env].runtime == "process" and not dr_config(project, env, environ).explicit:
            continue  # env local: nothing to lose unless the spec says so
        found, problem = env_facts(session, project, env, environ)
        facts.append(found)
        if problem is not None and schedule.watched(found):  # scheduled and running, store unreadable
            unreadable.append(schedule.Alarm(env, "store", f"{env}'s backup store cannot be read: {problem}"))
    return facts, unreadable + schedule.alarms(facts, clock())


def due_envs(session: Session, project: Project, environ: Mapping[str, str],
             clock: Clock = utc_now) -> list[str]:
    facts, _ = status(session, project, environ, clock)
    return schedule.due(facts, clock())


def backup_row_dict(item: Listed, now: datetime) -> dict[str, Any]:
    m = item.manifest
    if m is None:
        return {"id": item.id, "state": item.problem, "verified": False}
    return {"id": m.id, "env": m.env, "instance": m.instance, "release": m.release,
            "started_at": m.started_at.isoformat(),
            "age_seconds": round((now - m.started_at).total_seconds()),
            "size": m.size, "parts": {p.kind: p.size for p in m.parts},
            "verified": m.verified_at is not None,
            "state": "verified" if m.verified_at else "not verified"}


def restore_point(store: BackupStore, app: str, instance: str, which: str | None,
                  at: datetime | None) -> mf.Manifest:
    """`--from ID|latest`; with `--at` and no `--from`, the newest verified backup taken
    before that moment (its data folder, bucket and secrets; the database comes from PITR)."""
    from envplane.dr.restore import choose

    if at is None or which is not None:
        return choose(store, app, instance, which or "latest")
    good = [b.manifest for b in listed(store, app, instance)
            if b.manifest is not None and b.manifest.verified_at and b.manifest.started_at <= at]
    if not good:
        raise BackendError(f"no verified backup of {app} {instance} was taken before {at.isoformat()}",
                           "a point in time needs a backup from before it (and WAL archived since)")
    return good[0]


def run_restore(session: Session, project: Project, source: Opened, dest: Opened, which: str | None,
                at: datetime | None, on_part: OnPart, on_step: Any, health_timeout: float,
                pitr: Callable[[Reach], None] | None = None) -> Mapping[str, Any]:
    """Check every chunk, then under dest's lock: stop, restore, provision, start, health-check."""
    from envplane import actions
    from envplane.apply import Applier
    from envplane.dr.keys import identity
    from envplane.dr.restore import check_before_restore, restore_parts, summary
    from envplane.lifecycle import deploy

    manifest = restore_point(source.store, source.target.app, source.target.id, which, at)
    if manifest.app != dest.target.app:
        raise BackendError(f"backup {manifest.id} is of app {manifest.app}, not {dest.target.app}")
    try:
        check_before_restore(source.store, manifest)  # before anything is written
    except EnvplaneError as exc:
        session.audit("restore", dest.target, "refused", {"backup": manifest.id, "error": exc.message})
        raise
    key = identity(dest.target.app, dest.reach.environ)
    target = dest.target
    plan = actions.plan(project, target)
    compose = target.env.runtime == "compose"

    def apply(recorder: Any) -> Mapping[str, Any]:
        applier = Applier(project, on_step=recorder, health_timeout=health_timeout)
        if compose:
            runtime = applier.on_engine(target)  # the instance's host (spec `hosts:`)
            runtime.check()
            runtime.down(target.app, target.id, False)  # stop the app: nothing writes meanwhile
        database = (lambda: pitr(dest.reach)) if pitr is not None else None
        restore_parts(dest.reach, source.store, manifest, key,
                      lambda: Applier(project, on_step=recorder).provision_only(plan), on_part, database)
        urls: dict[str, str] = {}
        if compose:
            urls = Applier(project, on_step=recorder, health_timeout=health_timeout).up(plan).urls
        return {**summary(manifest), "at": at.isoformat() if at else None, "urls": urls}

    return deploy(session, target, "restore", apply, on_step)


def needs_final_backup(target: Target) -> bool:
    """Purging an env meant to last (staging, production: lifecycle `persistent…`) takes a
    final backup first, unless `--no-backup` says not to."""
    return target.env.lifecycle.startswith("persistent")


def final_backup(session: Session, project: Project, target: Target, environ: Mapping[str, str],
                 warn: Callable[[str], None], on_part: OnPart) -> BackupOutcome:
    """The backup `down --purge` takes before it deletes anything; a failure stops the purge."""
    if target.env.runtime == "kubernetes":
        # Its volumes are PersistentVolumeClaims in the cluster, which envplane does not back
        # up: a "final backup" without them would let the purge delete them unsaved.
        from envplane.kubernetes.convert import identity

        raise BackendError(
            f"a final backup of {target.app} {target.id} cannot hold its PersistentVolumeClaims (they "
            f"live in namespace {identity(target)[0]} of the cluster), so nothing was purged",
            "back them up with the cluster's own tools, then purge without a final backup: "
            f"envplane down {target.env.name} --purge --no-backup")
    opened = open_instance(project, target.env.name, target.instance.pr, environ)
    try:
        return run_backup(session, opened, warn, on_part)
    except EnvplaneError as exc:
        raise BackendError(f"the final backup before purging {target.app} {target.id} failed, so nothing "
                           f"was purged: {exc.message}",
                           f"fix the backup, or purge without one: envplane down {target.env.name} --purge "
                           "--no-backup") from None

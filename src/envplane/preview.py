"""Preview environments: one instance of a per-PR env per pull request (seed 000 §3.3, §6).

Choosing what `preview gc` destroys is pure (`gc_candidates`); it only ever picks
instances of per-PR envs, so staging and production are out of its reach. A preview whose
purge was `partial` (a server was missing or down) is picked again until it is purged.
`collect` runs the choice: each purge under the instance's lock, after a second look.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from envplane.errors import EnvplaneError, UsageError
from envplane.spec.ladder import EnvConfig
from envplane.state.instances import PARTIAL, PURGED, InstanceRecord

if TYPE_CHECKING:
    from envplane.lifecycle import Session

# Previews `collect` purges at once: a purge mostly waits on the engine (stopping containers,
# dropping networks and volumes) and the resource servers, so a few at a time overlap that
# waiting; more would only queue inside the engine of a small host.
GC_WORKERS = 4

_DURATION = re.compile(r"^(\d+)([smhdw])$")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


def duration(text: str) -> timedelta:
    match = _DURATION.match(text.strip())
    if match is None:
        raise UsageError(f"cannot read duration {text!r}", "write a number and a unit: 7d, 12h, 30m")
    return timedelta(**{_UNITS[match.group(2)]: int(match.group(1))})


def preview_env(envs: Mapping[str, EnvConfig]) -> str:
    """The env previews run in: `test`, or the one per-PR env the spec has."""
    per_pr = [name for name, env in envs.items() if env.instances == "per-pr"]
    if "test" in per_pr:
        return "test"
    if len(per_pr) == 1:
        return per_pr[0]
    raise UsageError("no single per-PR environment for previews", "keep the built-in `test` env")


@dataclass(frozen=True)
class Candidate:
    record: InstanceRecord
    reason: str


def gc_candidates(
    records: Iterable[InstanceRecord],
    envs: Mapping[str, EnvConfig],
    now: datetime,
    ttl: timedelta,
    idle: timedelta,
) -> list[Candidate]:
    out = []
    for record in records:
        env = envs.get(record.env)
        if env is None or env.instances != "per-pr" or record.status == PURGED:
            continue  # never staging, production or any single-instance env
        if record.status == PARTIAL:
            out.append(Candidate(record, "its last purge was partial: retrying it"))
            continue
        if record.closed_at is not None and now - record.closed_at >= ttl:
            out.append(Candidate(record, f"PR closed {_ago(now - record.closed_at)} ago (TTL {_ago(ttl)})"))
            continue
        last = record.last_deploy_at or record.created_at
        if now - last >= idle:
            out.append(Candidate(record, f"no deploy for {_ago(now - last)} (limit {_ago(idle)})"))
    return out


def _ago(delta: timedelta) -> str:
    seconds = int(delta.total_seconds())
    for size, unit in ((86400, "d"), (3600, "h"), (60, "m")):
        if seconds >= size:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


def evictable(worktrees: Iterable[int], records: Iterable[InstanceRecord]) -> list[int]:
    """PR worktrees that may be removed to make room, first the ones most surely unused.

    A preview that is down or purged needs its worktree no more; one whose PR closed
    only until gc. A PR with no preview yet may be deploying for the first time: kept.
    """
    by_pr = {r.instance: r for r in records}
    gone, closed = [], []
    for pr in worktrees:
        record = by_pr.get(f"pr-{pr}")
        if record is None:
            continue
        if record.status in ("down", PURGED, PARTIAL):
            gone.append((record.updated_at, pr))
        elif record.closed_at is not None:
            closed.append((record.closed_at, pr))
    return [pr for _, pr in sorted(gone)] + [pr for _, pr in sorted(closed)]


@dataclass(frozen=True)
class Collected:
    """What `preview gc` did with one candidate."""

    instance: str
    env: str
    reason: str
    outcome: str  # planned (a dry run), destroyed, partial, kept (redeployed meanwhile), failed
    detail: str = ""  # the error, the resources kept, or why it was kept

    def as_dict(self) -> dict[str, Any]:
        return {"instance": self.instance, "env": self.env, "reason": self.reason,
                "destroyed": self.outcome == "destroyed", "outcome": self.outcome, "detail": self.detail}

    def line(self) -> str:
        """In words: "destroyed pr-4: PR closed 8d ago (TTL 7d)"."""
        detail = f" ({self.detail})" if self.detail else ""
        return f"{VERBS[self.outcome]} {self.instance}: {self.reason}{detail}"


VERBS = {"planned": "would destroy", "destroyed": "destroyed", "partial": "partly destroyed",
         "kept": "kept", "failed": "failed to destroy"}


def collect(session: Session, ttl: timedelta, idle: timedelta, dry_run: bool,
            now: datetime, workers: int = GC_WORKERS,
            on_collected: Callable[[Collected], None] = lambda collected: None) -> list[Collected]:
    """Purge the previews `gc_candidates` picks, each at the data path recorded at its first
    `up` (never DATA_PATH from the shell), and only if it is still a candidate under its lock;
    up to `workers` at once, the results in the candidates' order. `on_collected` hears each
    one as it ends (from the pool's threads)."""
    from envplane import actions, lifecycle
    from envplane.state import instances

    project = session.project
    found = gc_candidates(instances.list_instances(session.store, project.app), project.envs, now, ttl, idle)
    known = lifecycle.known_instances(project, project.environ)

    def still(record: InstanceRecord | None) -> bool:  # a PR reopened meanwhile is not a candidate
        return record is not None and bool(gc_candidates([record], project.envs, now, ttl, idle))

    def purge(candidate: Candidate) -> Collected:
        record = candidate.record
        try:
            target = actions.resolve_existing(project, record.env, int(record.instance.removeprefix("pr-")),
                                              None, known)
            removal = lifecycle.collect(session, target, still)
        except EnvplaneError as exc:
            return Collected(record.instance, record.env, candidate.reason, "failed", exc.message)
        if removal is None:
            return Collected(record.instance, record.env, candidate.reason, "kept",
                             "redeployed since gc looked")
        if removal.kept:
            return Collected(record.instance, record.env, candidate.reason, "partial",
                             "kept with their secrets for the next gc: " + "; ".join(removal.kept))
        return Collected(record.instance, record.env, candidate.reason, "destroyed")

    def told(candidate: Candidate) -> Collected:
        collected = purge(candidate)
        on_collected(collected)
        return collected

    if dry_run:
        return [Collected(c.record.instance, c.record.env, c.reason, "planned") for c in found]
    if not found:
        return []
    # Each purge holds its own instance's lock, so purges of different previews may overlap.
    with ThreadPoolExecutor(max_workers=min(workers, len(found))) as pool:
        return list(pool.map(told, found))

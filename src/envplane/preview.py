"""Preview environments: one instance of a per-PR env per pull request (seed 000 §3.3, §6).

Choosing what `preview gc` destroys is pure (`gc_candidates`); it only ever picks
instances of per-PR envs, so staging and production are out of its reach.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta

from envplane.errors import UsageError
from envplane.spec.ladder import EnvConfig
from envplane.state.instances import InstanceRecord

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
        if env is None or env.instances != "per-pr" or record.status == "purged":
            continue  # never staging, production or any single-instance env
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

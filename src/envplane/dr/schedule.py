"""Which backups are due and which alarms stand (pure): a backup that did not run or did
not verify is an alarm, never silence (coolify#7779: six weeks without a backup while the
mails said "done").

An env is watched when it has a schedule (`backup.every`; production: 24 h by default) and
something to lose: a running instance, or backups already. Its alarms:
- no verified backup within its interval (`every`), or none at all;
- the newest verified backup older than the RPO target (`dr.rpo`);
- the last backup run failed (newer than the newest verified backup);
- no successful drill within `dr.drill_every` (once there is a backup to drill).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta


@dataclass(frozen=True)
class EnvFacts:
    env: str
    every: timedelta | None
    rpo: timedelta
    drill_every: timedelta
    active: bool  # the state store knows a running instance of it
    newest_verified: datetime | None  # started_at of the newest verified backup in the store
    last_failure: tuple[datetime, str] | None  # the newest failed run: when, and why
    last_good_drill: datetime | None


@dataclass(frozen=True)
class Alarm:
    env: str
    kind: str  # "schedule", "rpo", "failed", "drill"
    message: str


def watched(facts: EnvFacts) -> bool:
    return facts.every is not None and (facts.active or facts.newest_verified is not None)


def due(facts: Iterable[EnvFacts], now: datetime) -> list[str]:
    """Envs whose newest verified backup is as old as their interval (or that have none)."""
    found = []
    for f in facts:
        if f.every is None or not f.active:
            continue
        if f.newest_verified is None or now - f.newest_verified >= f.every:
            found.append(f.env)
    return found


def alarms(facts: Iterable[EnvFacts], now: datetime) -> list[Alarm]:
    found: list[Alarm] = []
    for f in facts:
        if not watched(f):
            continue
        assert f.every is not None
        if f.newest_verified is None:
            found.append(Alarm(f.env, "schedule",
                               f"{f.env} has no verified backup (schedule: every {span(f.every)})"))
        else:
            age = now - f.newest_verified
            if age > f.every:
                found.append(Alarm(f.env, "schedule", f"{f.env}'s newest verified backup is {span(age)} "
                                   f"old; its schedule is every {span(f.every)}"))
            if age > f.rpo:
                found.append(Alarm(f.env, "rpo", f"{f.env}'s newest verified backup is {span(age)} old, "
                                   f"beyond its RPO target of {span(f.rpo)}"))
        failure = f.last_failure
        if failure is not None and (f.newest_verified is None or failure[0] > f.newest_verified):
            found.append(Alarm(f.env, "failed", f"{f.env}'s last backup failed "
                               f"{span(now - failure[0])} ago: {failure[1]}"))
        if f.newest_verified is not None and (f.last_good_drill is None
                                              or now - f.last_good_drill > f.drill_every):
            when = "never" if f.last_good_drill is None else f"{span(now - f.last_good_drill)} ago"
            found.append(Alarm(f.env, "drill", f"{f.env}'s last successful drill: {when} "
                               f"(target: every {span(f.drill_every)}); run `envplane dr drill`"))
    return found


def span(delta: timedelta) -> str:
    """`2d3h`, `5h12m`, `4m`, `42s`: the two largest units."""
    seconds = max(0, int(delta.total_seconds()))
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    if days:
        return f"{days}d{hours}h" if hours else f"{days}d"
    if hours:
        return f"{hours}h{minutes}m" if minutes else f"{hours}h"
    return f"{minutes}m" if minutes else f"{secs}s"

"""Which backups retention deletes (pure): keep-last-N plus daily, weekly and monthly.

As restic's `forget --keep-*`: from the newest verified backup down, keep the first
`last`; then the newest of each of the latest `daily` days that have a backup, of the
latest `weekly` ISO weeks and of the latest `monthly` months. The newest verified backup
is always kept, whatever the numbers. A backup that is not verified counts for nothing:
it is kept while it is newer than the newest verified one (its check may still run), and
deleted once a newer verified backup exists (it failed its check, or never had one).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime

from envplane.spec.models import KeepSpec


@dataclass(frozen=True)
class Candidate:
    id: str
    at: datetime
    verified: bool


@dataclass(frozen=True)
class Decision:
    keep: tuple[str, ...]
    delete: tuple[str, ...]
    why: dict[str, str]  # id -> the rule that keeps it, or why it goes


def decide(backups: Iterable[Candidate], keep: KeepSpec) -> Decision:
    ordered = sorted(backups, key=lambda b: (b.at, b.id), reverse=True)
    good = [b for b in ordered if b.verified]
    why: dict[str, str] = {}
    if not good:
        return Decision(tuple(b.id for b in ordered), (), {b.id: "no verified backup yet" for b in ordered})
    why[good[0].id] = "newest verified"
    for backup in good[: keep.last]:
        why.setdefault(backup.id, f"last {keep.last}")
    _newest_per(good, keep.daily, lambda at: at.strftime("%Y-%m-%d"), "daily", why)
    _newest_per(good, keep.weekly, lambda at: "{}-W{:02d}".format(*at.isocalendar()[:2]), "weekly", why)
    _newest_per(good, keep.monthly, lambda at: at.strftime("%Y-%m"), "monthly", why)
    newest_good = good[0].at
    for backup in ordered:
        if not backup.verified:
            why[backup.id] = ("not verified yet" if backup.at > newest_good
                              else "not verified, and a newer backup is")
    kept = tuple(b.id for b in ordered if b.id in why and not why[b.id].startswith("not verified, and"))
    gone = tuple(b.id for b in ordered if b.id not in kept)
    for backup_id in gone:
        why.setdefault(backup_id, "beyond every keep rule")
    return Decision(kept, gone, why)


def _newest_per(good: list[Candidate], count: int, period: Callable[[datetime], str], rule: str,
                why: dict[str, str]) -> None:
    seen: set[str] = set()
    for backup in good:
        if len(seen) >= count:
            return
        key = period(backup.at)
        if key in seen:
            continue
        seen.add(key)
        why.setdefault(backup.id, f"{rule} {key}")

"""Which previews gc destroys; which PR worktrees may go to make room."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from envplane.preview import duration, evictable, gc_candidates
from envplane.spec.ladder import LADDER
from envplane.state.instances import InstanceRecord

NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)


def record(env: str, instance: str, deployed_days_ago: float, closed_days_ago: float | None = None,
           status: str = "ok") -> InstanceRecord:
    at = NOW - timedelta(days=30)
    return InstanceRecord(
        id=1, app="shop", env=env, instance=instance, status=status, ref=None, created_at=at, updated_at=at,
        last_deploy_at=NOW - timedelta(days=deployed_days_ago),
        closed_at=None if closed_days_ago is None else NOW - timedelta(days=closed_days_ago))


def picked(*records: InstanceRecord) -> list[tuple[str, str]]:
    found = gc_candidates(records, LADDER, NOW, duration("7d"), duration("14d"))
    return [(c.record.instance, c.reason) for c in found]


def test_closed_prs_go_after_the_ttl() -> None:
    assert picked(record("test", "pr-1", 1, closed_days_ago=8), record("test", "pr-2", 1, closed_days_ago=2)) == [
        ("pr-1", "PR closed 8d ago (TTL 7d)")]


def test_idle_previews_go_after_the_limit() -> None:
    assert picked(record("test", "pr-3", 15), record("test", "pr-4", 13)) == [
        ("pr-3", "no deploy for 15d (limit 14d)")]


def test_gc_never_touches_staging_or_production_however_old() -> None:
    assert picked(record("staging", "staging", 400, closed_days_ago=400),
                  record("production", "production", 400)) == []


def test_purged_previews_are_not_collected_again() -> None:
    assert picked(record("test", "pr-5", 99, closed_days_ago=99, status="purged")) == []


def test_worktrees_of_previews_that_are_gone_go_first_then_closed_ones_never_open_ones() -> None:
    records = [record("test", "pr-1", 1), record("test", "pr-2", 1, closed_days_ago=1),
               record("test", "pr-3", 1, status="purged"), record("test", "pr-4", 1, closed_days_ago=3),
               record("test", "pr-5", 1, status="down")]
    # pr-6 has a worktree but no preview yet: it may be deploying for the first time
    assert evictable([1, 2, 3, 4, 5, 6], records) == [3, 5, 4, 2]


def test_a_partly_purged_preview_is_collected_again_whatever_its_age() -> None:
    # its server was down at the purge: gc retries it until everything is gone
    assert picked(record("test", "pr-6", 0, status="partial"), record("staging", "staging", 0, status="partial")
                  ) == [("pr-6", "its last purge was partial: retrying it")]

"""Which previews gc destroys, and how webhooks become preview actions."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

from envplane.preview import duration, gc_candidates
from envplane.secret import Secret
from envplane.spec.ladder import LADDER
from envplane.state.instances import InstanceRecord
from envplane.webhook import Action, Refusal, decide, signature

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


SECRET = Secret("s3cr3t-webhook")


def event(action: str, pr: int = 7, sha: str = "abc123") -> bytes:
    return json.dumps({"action": action, "pull_request": {"number": pr, "head": {"sha": sha}}}).encode()


def headers(body: bytes, kind: str = "pull_request", secret: Secret = SECRET) -> dict[str, str]:
    return {"x-github-event": kind, "x-hub-signature-256": signature(secret, body)}


def test_pull_request_actions_map_to_preview_actions() -> None:
    for action, kind in (("opened", "up"), ("synchronize", "up"), ("reopened", "up"), ("closed", "close"),
                         ("labeled", "ignore")):
        body = event(action)
        verdict = decide(headers(body), body, SECRET)
        assert isinstance(verdict, Action) and verdict.kind == kind and verdict.pr == 7


def test_bad_or_missing_signature_is_refused() -> None:
    body = event("opened")
    assert decide(headers(body, secret=Secret("wrong")), body, SECRET) == Refusal(
        401, "bad or missing X-Hub-Signature-256")
    assert decide({"x-github-event": "pull_request"}, body, SECRET) == Refusal(
        401, "bad or missing X-Hub-Signature-256")
    # The body is signed: changing it after signing is refused too.
    assert isinstance(decide(headers(body), event("opened", pr=8), SECRET), Refusal)


def test_other_events_are_ignored() -> None:
    body = b"{}"
    verdict = decide(headers(body, kind="push"), body, SECRET)
    assert isinstance(verdict, Action) and verdict.kind == "ignore"

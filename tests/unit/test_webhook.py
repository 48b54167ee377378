"""How webhook requests become preview actions (#9.5, #9.16): signature first, size cap,
delivery de-duplication, fork and author policy, quiet refusals, per-PR queueing."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from typing import Any

import pytest

from envplane.secret import Secret
from envplane.spec.models import WebhookSpec
from envplane.webhook import MAX_BODY, Action, Receiver, Refusal, Throttle, decide, signature
from envplane.webhook_queue import PreviewQueue

SECRET = Secret("s3cr3t-webhook")
SHA_B = "b" * 40
REPO = "acme/shop"


def event(action: str, pr: int = 7, sha: str = SHA_B, head_repo: str | None = REPO, author: str = "alice",
          **extra: Any) -> bytes:
    """A pull_request event shaped as GitHub sends it (the fields envplane reads)."""
    head: dict[str, Any] = {"sha": sha, "ref": "feature",
                            "repo": {"full_name": head_repo} if head_repo else None}
    payload = {"action": action, "sender": {"login": author},
               "pull_request": {"number": pr, "user": {"login": author}, "head": head,
                                "base": {"ref": "main", "repo": {"full_name": REPO}}}, **extra}
    return json.dumps(payload).encode()


def headers(body: bytes, kind: str = "pull_request", secret: Secret = SECRET,
            delivery: str = "d-1") -> dict[str, str]:
    return {"X-GitHub-Event": kind, "X-Hub-Signature-256": signature(secret, body),
            "X-GitHub-Delivery": delivery, "Content-Type": "application/json"}


def lower(h: dict[str, str]) -> dict[str, str]:
    return {k.lower(): v for k, v in h.items()}


def test_pull_request_actions_map_to_preview_actions() -> None:
    for action, kind in (("opened", "up"), ("synchronize", "up"), ("reopened", "up"), ("closed", "close"),
                         ("labeled", "ignore")):
        body = event(action)
        verdict = decide(lower(headers(body)), body, SECRET)
        assert isinstance(verdict, Action), verdict
        assert (verdict.kind, verdict.pr, verdict.ref, verdict.sender) == (kind, 7, SHA_B, "alice")


def test_bad_or_missing_signature_is_refused() -> None:
    body = event("opened")
    assert decide(lower(headers(body, secret=Secret("wrong"))), body, SECRET) == Refusal(
        401, "bad or missing X-Hub-Signature-256")
    assert decide({"x-github-event": "pull_request"}, body, SECRET) == Refusal(
        401, "bad or missing X-Hub-Signature-256")
    # The body is signed: changing it after signing is refused too.
    assert isinstance(decide(lower(headers(body)), event("opened", pr=8), SECRET), Refusal)


def test_the_signature_is_checked_before_the_body_is_parsed() -> None:
    verdict = decide({"x-github-event": "pull_request", "x-hub-signature-256": "sha256=00"}, b"{not json",
                     SECRET)
    assert verdict == Refusal(401, "bad or missing X-Hub-Signature-256")


def test_other_events_are_ignored() -> None:
    body = b"{}"
    verdict = decide(lower(headers(body, kind="push")), body, SECRET)
    assert isinstance(verdict, Action) and verdict.kind == "ignore"


def push(ref: str = "refs/heads/main", after: str = SHA_B, **extra: Any) -> bytes:
    """A push event shaped as GitHub sends it (the fields envplane reads)."""
    return json.dumps({"ref": ref, "before": "a" * 40, "after": after, "created": False, "deleted": False,
                       "sender": {"login": "alice"}, "repository": {"full_name": REPO}, **extra}).encode()


RELEASE_MAIN = WebhookSpec.model_validate({"release_on_push": {"branch": "main"}})


def test_a_push_to_the_release_branch_releases_that_commit() -> None:
    body = push()
    verdict = decide(lower(headers(body, kind="push")), body, SECRET, RELEASE_MAIN)
    assert verdict == Action("release", None, SHA_B, "push to main", "alice", "d-1")
    assert RELEASE_MAIN.release_on_push is not None and RELEASE_MAIN.release_on_push.env == "staging"


def test_pushes_release_nothing_when_off_or_elsewhere() -> None:
    for policy, body, why in (
            (WebhookSpec(), push(), "webhook.release_on_push is off"),  # the default
            (RELEASE_MAIN, push("refs/heads/feature"), "a push to refs/heads/feature releases nothing"),
            (RELEASE_MAIN, push("refs/tags/v1.2.3"), "a push to refs/tags/v1.2.3 releases nothing"),
            (RELEASE_MAIN, push(after="0" * 40, deleted=True), "branch main was deleted"),
            (RELEASE_MAIN, push(after="0" * 40), "branch main was deleted")):
        verdict = decide(lower(headers(body, kind="push")), body, SECRET, policy)
        assert isinstance(verdict, Action) and verdict.kind == "ignore" and why in verdict.reason, verdict


def test_a_push_is_signed_and_well_formed_or_refused() -> None:
    body = push()
    assert decide(lower(headers(body, kind="push", secret=Secret("forged"))), body, SECRET, RELEASE_MAIN) == \
        Refusal(401, "bad or missing X-Hub-Signature-256")
    for bad in (push(after="HEAD~1"), push(after="--upload-pack=x"), b'{"ref": 1}', b"[]"):
        verdict = decide(lower(headers(bad, kind="push")), bad, SECRET, RELEASE_MAIN)
        assert isinstance(verdict, Refusal) and verdict.status == 400, (bad, verdict)


def test_a_fork_pr_is_refused_by_default_with_the_reason() -> None:
    body = event("opened", head_repo="mallory/shop")
    verdict = decide(lower(headers(body)), body, SECRET)
    assert isinstance(verdict, Refusal) and verdict.status == 403 and verdict.signed
    assert verdict.reason == ("PR #7 comes from a fork (mallory/shop); its code is not deployed "
                              "unless webhook.allow_forks is true")
    allowed = decide(lower(headers(body)), body, SECRET, WebhookSpec(allow_forks=True))
    assert isinstance(allowed, Action) and allowed.kind == "up"


def test_a_pr_whose_fork_was_deleted_counts_as_a_fork() -> None:
    body = event("synchronize", head_repo=None)
    verdict = decide(lower(headers(body)), body, SECRET)
    assert isinstance(verdict, Refusal) and "a deleted repository" in verdict.reason


def test_only_listed_authors_get_previews_when_authors_are_named() -> None:
    policy = WebhookSpec(authors=["Alice", "bob"])
    for author, kind in (("alice", Action), ("BOB", Action), ("mallory", Refusal)):
        body = event("opened", author=author)
        assert isinstance(decide(lower(headers(body)), body, SECRET, policy), kind)
    body = event("opened", author="mallory")
    verdict = decide(lower(headers(body)), body, SECRET, policy)
    assert isinstance(verdict, Refusal) and verdict.reason == "PR #7 is by mallory, who is not in webhook.authors"


def test_a_closed_fork_pr_is_still_recorded_as_closed() -> None:
    body = event("closed", head_repo="mallory/shop")
    verdict = decide(lower(headers(body)), body, SECRET)
    assert isinstance(verdict, Action) and verdict.kind == "close"


@pytest.mark.parametrize("sha", ["--upload-pack=touch /tmp/x", "abc123", "B" * 40, "g" * 40, "b" * 39, 42])
def test_a_head_sha_that_is_not_a_full_commit_name_never_reaches_git(sha: Any) -> None:
    body = event("opened", sha=sha)
    verdict = decide(lower(headers(body)), body, SECRET)
    assert isinstance(verdict, Refusal) and verdict.status == 400


@pytest.mark.parametrize("number", [0, -3, "7", True, 1.5])
def test_a_pr_number_must_be_a_positive_integer(number: Any) -> None:
    body = json.dumps({"action": "opened", "pull_request": {
        "number": number, "head": {"sha": SHA_B, "repo": {"full_name": REPO}},
        "base": {"repo": {"full_name": REPO}}}}).encode()
    assert isinstance(decide(lower(headers(body)), body, SECRET), Refusal)


class Endpoint:
    """A Receiver with recording callbacks, as the CLI wires it."""

    def __init__(self, policy: WebhookSpec | None = None) -> None:
        self.seen: set[str] = set()
        self.submitted: list[Action] = []
        self.audited: list[Refusal] = []
        self.lines: list[str] = []
        self.db_writes = 0
        self.now = 0.0
        self.receiver = Receiver(SECRET, policy or WebhookSpec(), self.first_time, self.submitted.append,
                                 self.audited.append, self.lines.append,
                                 Throttle(self.lines.append, clock=lambda: self.now))

    def first_time(self, delivery: str) -> bool:
        self.db_writes += 1
        new = delivery not in self.seen
        self.seen.add(delivery)
        return new

    def send(self, body: bytes, h: dict[str, str], length: str | None = None,
             read: Callable[[int], bytes] | None = None) -> tuple[int, dict[str, Any]]:
        answer = self.receiver.receive(h, str(len(body)) if length is None else length,
                                       read or (lambda n: body[:n]), "203.0.113.9")
        return answer.status, answer.body


def never_read(n: int) -> bytes:
    raise AssertionError("the body was read")


def test_a_body_over_one_mebibyte_is_refused_unread() -> None:
    endpoint = Endpoint()
    status, body = endpoint.send(b"", {}, length=str(MAX_BODY + 1), read=never_read)
    assert (status, body) == (413, {"error": f"body over {MAX_BODY} bytes"})
    assert MAX_BODY == 1024 * 1024


def test_a_body_of_exactly_the_limit_is_read() -> None:
    endpoint = Endpoint()
    status, _ = endpoint.send(b" " * MAX_BODY, {"X-Hub-Signature-256": "sha256=0"})
    assert status == 401


def test_a_request_without_content_length_or_with_a_bad_one_is_refused() -> None:
    endpoint = Endpoint()
    assert endpoint.receiver.receive({}, None, never_read, "x").status == 411
    assert endpoint.receiver.receive({}, "-5", never_read, "x").status == 400
    assert endpoint.receiver.receive({}, "10", lambda n: b"short", "x").status == 400


def test_a_repeated_delivery_is_ignored() -> None:
    endpoint = Endpoint()
    body = event("opened")
    assert endpoint.send(body, headers(body, delivery="72d3162e-cc78-11e3"))[0] == 202
    status, answer = endpoint.send(body, headers(body, delivery="72d3162e-cc78-11e3"))
    assert (status, answer["ignored"]) == (200, "repeated delivery")
    assert [a.pr for a in endpoint.submitted] == [7]


def test_a_signed_request_without_a_delivery_id_is_refused() -> None:
    endpoint = Endpoint()
    body = event("opened")
    h = headers(body)
    del h["X-GitHub-Delivery"]
    assert endpoint.send(body, h)[0] == 400
    assert endpoint.submitted == []


def test_bad_signatures_write_nothing_and_log_a_few_lines() -> None:
    endpoint = Endpoint()
    body = event("opened")
    for n in range(100):
        assert endpoint.send(body, headers(body, secret=Secret("forged"), delivery=f"d-{n}"))[0] == 401
    assert endpoint.audited == [] and endpoint.submitted == []
    assert endpoint.db_writes == 0  # not even the delivery id: it is not GitHub's until signed
    assert len(endpoint.lines) == 5
    endpoint.now += 61
    endpoint.send(body, headers(body, secret=Secret("forged")))
    assert endpoint.lines[-1].endswith("(95 more refused before this, not shown)")


def test_a_policy_refusal_is_answered_with_its_reason_and_audited_once() -> None:
    endpoint = Endpoint()
    body = event("opened", head_repo="mallory/shop")
    status, answer = endpoint.send(body, headers(body, delivery="d-fork"))
    assert status == 403 and "fork" in answer["error"] and answer["pr"] == 7
    endpoint.send(body, headers(body, delivery="d-fork"))  # GitHub delivers it again
    assert [(r.pr, r.status) for r in endpoint.audited] == [(7, 403)]
    assert endpoint.submitted == []


def test_an_accepted_action_carries_its_delivery_and_sender() -> None:
    endpoint = Endpoint()
    body = event("synchronize", author="alice")
    status, answer = endpoint.send(body, headers(body, delivery="d-9"))
    assert (status, answer) == (202, {"accepted": "up", "pr": 7, "sha": SHA_B, "reason": "synchronize"})
    [action] = endpoint.submitted
    assert (action.delivery, action.sender) == ("d-9", "alice")


class Blocking:
    """A runner whose actions wait until the test lets them finish."""

    def __init__(self) -> None:
        self.started: list[str] = []
        self.finished: list[str] = []
        self.release: dict[str, threading.Event] = {}
        self.changed = threading.Condition()
        self.at_once: dict[int, int] = {}
        self.most_at_once_per_pr = 0

    def __call__(self, action: Action) -> None:
        assert action.pr is not None and action.ref is not None
        gate = self.release.setdefault(action.ref, threading.Event())
        with self.changed:
            self.started.append(action.ref)
            self.at_once[action.pr] = self.at_once.get(action.pr, 0) + 1
            self.most_at_once_per_pr = max(self.most_at_once_per_pr, self.at_once[action.pr])
            self.changed.notify_all()
        assert gate.wait(10)
        with self.changed:
            self.at_once[action.pr] -= 1
            self.finished.append(action.ref)

    def started_(self, ref: str) -> None:
        with self.changed:
            assert self.changed.wait_for(lambda: ref in self.started, 10), self.started

    def let(self, ref: str) -> None:
        self.release.setdefault(ref, threading.Event()).set()


def up(pr: int, ref: str) -> Action:
    return Action("up", pr, ref)


def test_a_newer_push_supersedes_the_one_still_waiting_and_the_running_one_finishes() -> None:
    runner = Blocking()
    replaced: list[tuple[str | None, str | None]] = []
    queue = PreviewQueue(runner, workers=2, superseded=lambda old, new: replaced.append((old.ref, new.ref)))
    queue.start()
    try:
        queue.submit(up(1, "b1"))
        runner.started_("b1")
        queue.submit(up(1, "b2"))  # waits: PR 1 is deploying b1
        queue.submit(up(1, "b3"))  # replaces b2, which never started
        runner.let("b1")
        runner.started_("b3")
        runner.let("b3")
        assert queue.wait_idle(10)
    finally:
        queue.stop()
    assert runner.started == ["b1", "b3"]
    assert replaced == [("b2", "b3")]
    assert runner.most_at_once_per_pr == 1


def test_different_prs_deploy_at_the_same_time() -> None:
    runner = Blocking()
    queue = PreviewQueue(runner, workers=2).start()
    try:
        queue.submit(up(1, "one"))
        queue.submit(up(2, "two"))
        runner.started_("one")
        runner.started_("two")  # both running while neither is released
        runner.let("one")
        runner.let("two")
        assert queue.wait_idle(10)
    finally:
        queue.stop()


def test_a_failed_action_is_reported_and_the_worker_goes_on() -> None:
    failures: list[str] = []
    done: list[str] = []

    def run(action: Action) -> None:
        if action.ref == "bad":
            raise RuntimeError("boom")
        done.append(str(action.ref))

    queue = PreviewQueue(run, workers=1, failed=lambda a, e: failures.append(f"{a.ref}: {e}")).start()
    try:
        queue.submit(up(1, "bad"))
        queue.submit(up(2, "good"))
        assert queue.wait_idle(10)
    finally:
        queue.stop()
    assert failures == ["bad: boom"] and done == ["good"]


def test_the_http_server_answers_500_when_the_state_store_fails_and_keeps_serving() -> None:
    import socket
    import urllib.error
    import urllib.request

    from envplane.errors import StateError
    from envplane.webhook import serve

    lines: list[str] = []
    calls = {"n": 0}

    def first_time(delivery: str) -> bool:
        calls["n"] += 1
        if calls["n"] == 1:
            raise StateError("cannot use the state store at state.db: disk I/O error")
        return True

    receiver = Receiver(SECRET, WebhookSpec(), first_time, lambda action: None, lambda refusal: None,
                        lines.append)
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    ready, stop = threading.Event(), threading.Event()
    thread = threading.Thread(target=serve, args=(("127.0.0.1", port), receiver, ready, stop), daemon=True)
    thread.start()
    assert ready.wait(10)
    body = event("opened")

    def post() -> int:
        request = urllib.request.Request(f"http://127.0.0.1:{port}/", data=body, headers=headers(body))
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                return int(response.status)
        except urllib.error.HTTPError as exc:
            return exc.code

    try:
        assert post() == 500
        assert post() == 202
    finally:
        stop.set()
        thread.join(10)
    assert any("disk I/O error" in line for line in lines)

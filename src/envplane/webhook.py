"""GitHub webhooks -> actions, with no HTTP server in the logic: `pull_request` events
deploy previews, and `push` events to the branch `webhook.release_on_push` names release
its new head (off by default).

`Receiver.receive` takes what any HTTP front end has (headers, a Content-Length, a way to
read the body, the peer) and answers a status and a JSON body, in this order:

1. a body over MAX_BODY is refused (413) before it is read;
2. the X-Hub-Signature-256 HMAC of the raw body is checked (constant time) before anything
   else of the request is parsed; an unsigned request is refused (401) and only logged,
   at most a few lines a minute, so a flood writes neither the audit log nor the terminal;
3. a repeated X-GitHub-Delivery id is ignored (200), as GitHub may deliver twice;
4. the payload becomes an action, and the spec's `webhook:` policy (forks, authors) may
   refuse it (403, audited: GitHub signed it, so it cannot be a flood).

`decide` is steps 2 and 4 as one pure function. `serve` is the stand-alone HTTP server.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import re
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from envplane.secret import Secret
from envplane.spec.models import WebhookSpec

log = logging.getLogger("envplane.webhook")

UP_ACTIONS = frozenset({"opened", "synchronize", "reopened"})
MAX_BODY = 1024 * 1024  # GitHub caps payloads at 25 MB; a pull_request event is a few dozen KB
SHA = re.compile(r"^[0-9a-f]{40}(?:[0-9a-f]{24})?$")  # SHA-1 or SHA-256 object names
DELIVERY = re.compile(r"^[A-Za-z0-9-]{1,100}$")


@dataclass(frozen=True)
class Action:
    kind: str  # "up" | "close" | "release" | "ignore"
    pr: int | None = None  # None for a push
    ref: str | None = None  # the PR's head sha, or the pushed commit
    reason: str = ""
    sender: str = ""  # the GitHub login that caused the event
    delivery: str = ""

    @property
    def label(self) -> str:
        """What the action is about, for log lines: "PR 7", "push to main"."""
        return f"PR {self.pr}" if self.pr is not None else self.reason


@dataclass(frozen=True)
class Refusal:
    status: int
    reason: str
    signed: bool = False  # GitHub signed it: a policy decision to audit, not noise to throttle
    pr: int | None = None
    ref: str | None = None
    sender: str = ""


@dataclass(frozen=True)
class PullRequest:
    number: int
    sha: str
    author: str
    head_repo: str | None  # owner/name of the branch's repository; None when it was deleted
    base_repo: str

    @property
    def fork(self) -> bool:
        return self.head_repo is None or self.head_repo.lower() != self.base_repo.lower()


def signature(secret: Secret, body: bytes) -> str:
    return "sha256=" + hmac.new(secret.reveal().encode(), body, hashlib.sha256).hexdigest()


def verify(headers: Mapping[str, str], body: bytes, secret: Secret) -> Refusal | None:
    given = headers.get("x-hub-signature-256", "")
    if not given or not hmac.compare_digest(given.encode(), signature(secret, body).encode()):
        return Refusal(401, "bad or missing X-Hub-Signature-256")
    return None


def decide(headers: Mapping[str, str], body: bytes, secret: Secret,
           policy: WebhookSpec | None = None) -> Action | Refusal:
    """The action a request asks for, or why it is refused. Pure."""
    refused = verify(headers, body, secret)
    return refused if refused is not None else read_event(headers, body, policy or WebhookSpec())


def read_event(headers: Mapping[str, str], body: bytes, policy: WebhookSpec) -> Action | Refusal:
    """A signed request's action (call only after `verify`)."""
    delivery = headers.get("x-github-delivery", "")
    event = headers.get("x-github-event", "")
    if event == "ping":
        return Action("ignore", reason="ping", delivery=delivery)
    if event == "push":
        return read_push(body, policy, delivery)
    if event != "pull_request":
        why = f"event {event[:50] or '(none)'} is not pull_request"
        return Action("ignore", reason=why, delivery=delivery)
    try:
        payload = json.loads(body)
        action = str(payload["action"])
        pr = pull_request(payload["pull_request"])
        sender = str((payload.get("sender") or {}).get("login") or pr.author)
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        return Refusal(400, f"not a pull_request payload: {str(exc)[:100]}", signed=True)
    if action == "closed":
        return Action("close", pr.number, pr.sha, action, sender, delivery)
    if action not in UP_ACTIONS:
        return Action("ignore", pr.number, pr.sha, f"action {action[:50]} needs nothing", sender, delivery)
    barred = admit(pr, policy)
    if barred is not None:
        return Refusal(403, barred, signed=True, pr=pr.number, ref=pr.sha, sender=sender)
    return Action("up", pr.number, pr.sha, action, sender, delivery)


def read_push(body: bytes, policy: WebhookSpec, delivery: str) -> Action | Refusal:
    """A push to the branch of `webhook.release_on_push` releases its new head; any other
    push (another branch, a tag, a deleted branch), or any push with the setting off, is
    ignored."""
    rule = policy.release_on_push
    if rule is None:
        return Action("ignore", reason="push events release nothing (webhook.release_on_push is off)",
                      delivery=delivery)
    try:
        payload = json.loads(body)
        ref, sha = payload["ref"], payload["after"]
        if not isinstance(ref, str) or not isinstance(sha, str):
            raise TypeError("ref and after must be strings")
        sender = str((payload.get("sender") or {}).get("login") or "")
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        return Refusal(400, f"not a push payload: {str(exc)[:100]}", signed=True)
    if ref != f"refs/heads/{rule.branch}":
        return Action("ignore", reason=f"a push to {ref[:100]} releases nothing", sender=sender,
                      delivery=delivery)
    if payload.get("deleted") is True or set(sha) == {"0"}:
        return Action("ignore", reason=f"branch {rule.branch} was deleted", sender=sender, delivery=delivery)
    if not SHA.match(sha):
        return Refusal(400, "not a push payload: after must be a full commit sha", signed=True)
    return Action("release", None, sha, f"push to {rule.branch}", sender, delivery)


def pull_request(data: Any) -> PullRequest:
    number = data["number"]
    if not isinstance(number, int) or isinstance(number, bool) or number < 1:
        raise ValueError("pull_request.number must be a positive integer")
    sha = data["head"]["sha"]
    if not isinstance(sha, str) or not SHA.match(sha):
        raise ValueError("pull_request.head.sha must be a full commit sha")
    head_repo = (data["head"].get("repo") or {}).get("full_name")
    base_repo = (data.get("base", {}).get("repo") or {}).get("full_name") or ""
    return PullRequest(number, sha, str((data.get("user") or {}).get("login") or ""),
                       str(head_repo) if head_repo else None, str(base_repo))


def admit(pr: PullRequest, policy: WebhookSpec) -> str | None:
    """Why the policy refuses to deploy the PR, or None."""
    if pr.fork and not policy.allow_forks:
        where = pr.head_repo or "a deleted repository"
        return (f"PR #{pr.number} comes from a fork ({where}); its code is not deployed "
                "unless webhook.allow_forks is true")
    if policy.authors is not None and pr.author.lower() not in {a.lower() for a in policy.authors}:
        return f"PR #{pr.number} is by {pr.author or '(unknown)'}, who is not in webhook.authors"
    return None


class Throttle:
    """Passes at most `burst` lines per `window` seconds; the next line says how many it dropped."""

    def __init__(self, write: Callable[[str], None], burst: int = 5, window: float = 60.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.write, self.burst, self.window, self.clock = write, burst, window, clock
        self.started = -window
        self.shown = 0
        self.dropped = 0
        self.lock = threading.Lock()

    def __call__(self, line: str) -> None:
        with self.lock:
            now = self.clock()
            if now - self.started >= self.window:
                self.started, self.shown = now, 0
            if self.shown >= self.burst:
                self.dropped += 1
                return
            self.shown += 1
            if self.dropped:
                line += f" ({self.dropped} more refused before this, not shown)"
                self.dropped = 0
        self.write(line)


@dataclass(frozen=True)
class Answer:
    status: int
    body: dict[str, Any]


class Receiver:
    """One webhook endpoint: checks, de-duplicates and turns requests into queued actions.

    `first_time(delivery)` remembers a delivery id and says whether it was new; `submit`
    queues an action; `audit` records a refusal GitHub signed; `write` prints one log line.
    """

    def __init__(self, secret: Secret, policy: WebhookSpec, first_time: Callable[[str], bool],
                 submit: Callable[[Action], None], audit: Callable[[Refusal], None],
                 write: Callable[[str], None], throttle: Throttle | None = None) -> None:
        self.secret, self.policy = secret, policy
        self.first_time, self.submit, self.audit, self.write = first_time, submit, audit, write
        self.noise = throttle or Throttle(write)

    def receive(self, headers: Mapping[str, str], length: str | None, read: Callable[[int], bytes],
                peer: str) -> Answer:
        headers = {k.lower(): v for k, v in headers.items()}
        if length is None:
            return self._noise(411, "a Content-Length is required", peer)
        if not length.isdigit():
            return self._noise(400, "bad Content-Length", peer)
        if int(length) > MAX_BODY:
            return self._noise(413, f"body over {MAX_BODY} bytes", peer)
        body = read(int(length))
        if len(body) != int(length):
            return self._noise(400, "body shorter than its Content-Length", peer)
        refused = verify(headers, body, self.secret)
        if refused is not None:
            return self._noise(refused.status, refused.reason, peer)
        delivery = headers.get("x-github-delivery", "")
        if not DELIVERY.match(delivery):
            return self._noise(400, "bad or missing X-GitHub-Delivery", peer)
        if not self.first_time(delivery):
            self.write(f"webhook: delivery {delivery} was taken already; ignored")
            return Answer(200, {"ignored": "repeated delivery", "delivery": delivery})
        verdict = read_event(headers, body, self.policy)
        if isinstance(verdict, Refusal):
            self.write(f"webhook: refused delivery {delivery}: {verdict.reason}")
            self.audit(verdict)
            return Answer(verdict.status, {"error": verdict.reason, "pr": verdict.pr})
        if verdict.kind != "ignore":
            self.submit(verdict)
        return Answer(202, {"accepted": verdict.kind, "pr": verdict.pr, "sha": verdict.ref,
                            "reason": verdict.reason})

    def _noise(self, status: int, reason: str, peer: str) -> Answer:
        self.noise(f"webhook: refused a request from {peer}: {reason} ({status})")
        return Answer(status, {"error": reason})


def serve(listen: tuple[str, int], receiver: Receiver, ready: threading.Event | None = None,
          stop: threading.Event | None = None) -> None:
    """Serve `receiver` over HTTP until `stop` is set (or forever)."""

    class Handler(BaseHTTPRequestHandler):
        timeout = 15  # seconds a client may take to send its request

        def do_POST(self) -> None:
            try:
                answer = receiver.receive(dict(self.headers.items()), self.headers.get("content-length"),
                                          self.rfile.read, self.client_address[0])
            except Exception as error:  # e.g. the state store is down: GitHub sees a failed delivery
                receiver.write(f"webhook: could not take a request: {type(error).__name__}: {error}")
                answer = Answer(500, {"error": "the webhook could not take this delivery; see its log"})
            data = json.dumps(answer.body).encode()
            self.send_response(answer.status)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(data)))
            if answer.status >= 400:
                self.send_header("connection", "close")  # an unread body must not be read as a request
                self.close_connection = True
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, format: str, *args: object) -> None:
            log.debug("webhook %s", format % args)

    server = ThreadingHTTPServer(listen, Handler)
    server.daemon_threads = True
    if ready is not None:
        ready.set()
    if stop is not None:
        def stopper() -> None:
            stop.wait()
            server.shutdown()

        threading.Thread(target=stopper, daemon=True).start()
    try:
        server.serve_forever(poll_interval=0.2)
    finally:
        server.server_close()

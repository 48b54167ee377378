"""GitHub `pull_request` webhooks -> preview actions.

`decide` is pure: headers, body and secret in; the action (or the reason for a
refusal) out. The X-Hub-Signature-256 HMAC is compared in constant time.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import queue
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from envplane.secret import Secret

log = logging.getLogger("envplane.webhook")

UP_ACTIONS = frozenset({"opened", "synchronize", "reopened"})


@dataclass(frozen=True)
class Action:
    kind: str  # "up" | "close" | "ignore"
    pr: int | None = None
    ref: str | None = None
    reason: str = ""


@dataclass(frozen=True)
class Refusal:
    status: int
    reason: str


def signature(secret: Secret, body: bytes) -> str:
    return "sha256=" + hmac.new(secret.reveal().encode(), body, hashlib.sha256).hexdigest()


def decide(headers: Mapping[str, str], body: bytes, secret: Secret) -> Action | Refusal:
    given = headers.get("x-hub-signature-256", "")
    if not given or not hmac.compare_digest(given, signature(secret, body)):
        return Refusal(401, "bad or missing X-Hub-Signature-256")
    event = headers.get("x-github-event", "")
    if event == "ping":
        return Action("ignore", reason="ping")
    if event != "pull_request":
        return Action("ignore", reason=f"event {event or '(none)'} is not pull_request")
    try:
        payload = json.loads(body)
        action = str(payload["action"])
        pr = int(payload["pull_request"]["number"])
        ref = str(payload["pull_request"]["head"]["sha"])
    except (ValueError, KeyError, TypeError):
        return Refusal(400, "not a pull_request payload")
    if action in UP_ACTIONS:
        return Action("up", pr, ref, action)
    if action == "closed":
        return Action("close", pr, ref, action)
    return Action("ignore", pr, ref, f"action {action} needs nothing")


Runner = Callable[[Action], None]
Refused = Callable[[Refusal, str], None]


def serve(listen: tuple[str, int], secret: Secret, runner: Runner, refused: Refused,
          ready: threading.Event | None = None, stop: threading.Event | None = None) -> None:
    """Answer GitHub at once and run the preview actions one at a time, in order."""
    work: queue.Queue[Action | None] = queue.Queue()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers.get("content-length") or 0)
            body = self.rfile.read(length)
            headers = {k.lower(): v for k, v in self.headers.items()}
            verdict = decide(headers, body, secret)
            if isinstance(verdict, Refusal):
                refused(verdict, self.client_address[0])
                self._answer(verdict.status, {"error": verdict.reason})
                return
            if verdict.kind != "ignore":
                work.put(verdict)
            self._answer(202, {"accepted": verdict.kind, "pr": verdict.pr})

        def _answer(self, status: int, payload: dict[str, object]) -> None:
            data = json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, format: str, *args: object) -> None:
            log.info("webhook %s", format % args)

    def worker() -> None:
        while (item := work.get()) is not None:
            try:
                runner(item)
            except Exception:  # one bad PR must not stop the others
                log.exception("preview action for PR %s failed", item.pr)

    server = ThreadingHTTPServer(listen, Handler)
    thread = threading.Thread(target=worker, daemon=True)
    thread.start()
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
        work.put(None)
        thread.join(timeout=600)
        server.server_close()

"""The webhook's request path on a real HTTP server and a real SQLite state store.
Prints figures; asserts nothing.

1. forged requests (bad signature): answered per second, audit rows and log lines they leave;
2. signed deliveries: answered per second, each one remembered in the state store;
3. the same deliveries again: answered per second as repeats.

Usage: .venv/bin/python bench/bench_webhook.py [--requests N]
"""

from __future__ import annotations

import argparse
import json
import socket
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from envplane.secret import Secret
from envplane.spec.models import WebhookSpec
from envplane.state import audit, deliveries
from envplane.state.db import open_store
from envplane.webhook import Action, Receiver, serve, signature

SECRET = Secret("bench-secret")


def post(port: int, body: bytes, headers: dict[str, str]) -> int:
    request = urllib.request.Request(f"http://127.0.0.1:{port}/", data=body, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return int(response.status)
    except urllib.error.HTTPError as exc:
        return exc.code


def rate(n: int, send: Callable[[int], int]) -> float:
    start = time.perf_counter()
    for i in range(n):
        send(i)
    return n / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=500)
    n = parser.parse_args().requests
    folder = Path(tempfile.mkdtemp(prefix="bench-webhook-"))
    store = open_store(folder)
    lines: list[str] = []
    queued: list[Action] = []
    receiver = Receiver(SECRET, WebhookSpec(), lambda d: deliveries.first_time(store, "shop", d),
                        queued.append, lambda refusal: None, lines.append)
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    ready, stop = threading.Event(), threading.Event()
    threading.Thread(target=serve, args=(("127.0.0.1", port), receiver, ready, stop), daemon=True).start()
    ready.wait(10)
    repo = {"full_name": "acme/shop"}
    body = json.dumps({"action": "synchronize", "pull_request": {
        "number": 7, "user": {"login": "alice"}, "head": {"sha": "b" * 40, "repo": repo},
        "base": {"repo": repo}}}).encode()
    forged = {"X-GitHub-Event": "pull_request", "X-Hub-Signature-256": signature(Secret("forged"), body),
              "X-GitHub-Delivery": "x"}

    def signed(i: int) -> dict[str, str]:
        return {"X-GitHub-Event": "pull_request", "X-Hub-Signature-256": signature(SECRET, body),
                "X-GitHub-Delivery": f"delivery-{i}"}

    rows = len(audit.entries(store))
    print(f"forged requests:    {rate(n, lambda i: post(port, body, forged)):7.0f}/s  "
          f"({n} sent: {len(audit.entries(store)) - rows} audit rows, {len(lines)} log lines)")
    print(f"signed deliveries:  {rate(n, lambda i: post(port, body, signed(i))):7.0f}/s  "
          f"({len(queued)} queued, {deliveries.count(store)} ids kept)")
    print(f"repeated deliveries:{rate(n, lambda i: post(port, body, signed(i))):7.0f}/s  "
          f"({len(queued)} queued in all)")
    stop.set()
    store.close()


if __name__ == "__main__":
    main()

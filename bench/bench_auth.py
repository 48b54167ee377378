"""What authenticating costs the server per request (issue 14): a token, a password, a scope.

    .venv/bin/python bench/bench_auth.py [--runs N] [--threads T]

Prints figures for the server's store on SQLite (a temporary home) and, when
ENVPLANE_TEST_POSTGRES_URL is set, on a fresh PostgreSQL database: one bearer token checked
(an indexed SHA-256 lookup plus the seal; last use written at most once a minute), T threads
checking one token at once, a password login (scrypt, memory-hard on purpose), and a scope
check. Asserts nothing.
"""

from __future__ import annotations

import argparse
import base64
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from bench._common import bench
from envplane.server import auth
from envplane.server.home import open_server_store
from envplane.state.db import Store

KEY = base64.b64encode(b"b" * 32).decode()


@contextmanager
def stores() -> Iterator[tuple[str, Store]]:
    with tempfile.TemporaryDirectory() as home:
        store = open_server_store({"ENVPLANE_SERVER_HOME": home, "ENVPLANE_AUDIT_KEY": KEY})
        try:
            yield "sqlite", store
        finally:
            store.close()


@contextmanager
def postgres() -> Iterator[tuple[str, Store] | None]:
    import os

    if not os.environ.get("ENVPLANE_TEST_POSTGRES_URL"):
        yield None
        return
    from tests.unit.state.stores import fresh_postgres_database

    with fresh_postgres_database() as url, tempfile.TemporaryDirectory() as home:
        store = open_server_store({"ENVPLANE_SERVER_HOME": home, "ENVPLANE_AUDIT_KEY": KEY,
                                   "ENVPLANE_STATE_URL": url})
        try:
            yield "postgres", store
        finally:
            store.close()


def concurrent(store: Store, raw: str, threads: int) -> list[float]:
    """Each of `threads` threads checks the token at once; the milliseconds each took."""
    took: list[float] = []
    start = threading.Barrier(threads)

    def one() -> None:
        start.wait()
        began = time.perf_counter()
        assert auth.authenticate_token(store, raw) is not None
        took.append((time.perf_counter() - began) * 1000)

    workers = [threading.Thread(target=one) for _ in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    return took


def run(kind: str, store: Store, runs: int, threads: int) -> None:
    _, raw = auth.create_token(store, "bench", ["deploy:test", "read"])
    token = raw.reveal()
    auth.add_user(store, "alice", "a password long enough")
    bench(f"{kind}: authenticate_token (last use fresh: read only)",
          lambda: auth.authenticate_token(store, token), runs=runs, warmup=2)
    bench(f"{kind}: authenticate_token of an unknown token",
          lambda: auth.authenticate_token(store, "envp_x" * 7), runs=runs, warmup=1)
    took = concurrent(store, token, threads)
    took.sort()
    print(f"{kind}: {threads} threads at once: median {statistics.median(took):.1f} ms, "
          f"p95 {took[int(len(took) * 0.95) - 1]:.1f} ms, max {took[-1]:.1f} ms", flush=True)
    bench(f"{kind}: check_password (scrypt N=2^15)",
          lambda: auth.check_password(store, "alice", "a password long enough"), runs=max(3, runs // 10))
    bench(f"{kind}: check_password of an unknown user (same scrypt)",
          lambda: auth.check_password(store, "nobody", "a password long enough"), runs=max(3, runs // 10))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=50)
    parser.add_argument("--threads", type=int, default=50)
    args = parser.parse_args()
    principal = auth.Principal("ci", "token", frozenset({"deploy:test*", "read", "approve:prod*"}))
    bench("Principal.may(deploy, test-pr-1)", lambda: principal.may("deploy", "test-pr-1"), runs=1000)
    with stores() as (kind, store):
        run(kind, store, args.runs, args.threads)
    with postgres() as found:
        if found is not None:
            run(*found, args.runs, args.threads)


if __name__ == "__main__":
    main()

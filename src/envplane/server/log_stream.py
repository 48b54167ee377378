"""A log command's output for a web page: read by a thread of its own into a bounded backlog,
so that a slow reader never holds the command up and always gets the newest lines (#7719:
deploy logs that freeze in the browser), in batches, masked, with a count of what it skipped.
A reader in the server's event loop waits for lines without holding a worker thread.
`sse_events` is the Server-Sent Events loop of the API's and the dashboard's log streams."""

from __future__ import annotations

import asyncio
import contextlib
import os
import subprocess
import threading
import time
from collections import deque
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from typing import TYPE_CHECKING

from envplane.secret import Secret, mask_known

if TYPE_CHECKING:
    from starlette.requests import Request

    from envplane.service.logs import Reader

LOG_BATCH = 500  # lines per batch at most: a burst goes out in a few events, not thousands
LOG_BACKLOG = 5000  # lines kept for a slow reader; older ones are dropped and counted
KEEP_ALIVE = 15.0  # seconds of silence before a comment keeps the stream open (proxies close quiet ones)
RECHECK = 10.0  # seconds between two checks that the client may still watch


class LogSource:
    """A log command's output lines, read by a thread of its own into a bounded backlog: a
    slow reader never holds the process up and always gets the newest lines (#7719: logs
    that freeze in the browser). A reader in the server's event loop waits for lines
    without holding a worker thread. Closing it stops the process."""

    def __init__(self, args: Sequence[str], env: Mapping[str, str], secrets: list[Secret],
                 backlog: int = LOG_BACKLOG) -> None:
        self.secrets = secrets
        self.backlog = backlog
        self.ended = False
        self._skipped = 0
        self._lines: deque[str] = deque()
        self._lock = threading.Lock()
        self._waiters: list[tuple[asyncio.AbstractEventLoop, asyncio.Event]] = []
        # A follower that runs as long as the page watches: not a command run.run waits for.
        self._process = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                         stdin=subprocess.DEVNULL, env={**os.environ, **env}, text=True,
                                         errors="replace", bufsize=1)
        self._reader = threading.Thread(target=self._read, daemon=True, name="dashboard-log")
        self._reader.start()

    @classmethod
    def of(cls, found: Reader) -> LogSource:
        """The lines of service.logs' reader: any runtime, masked with the app's secrets."""
        return cls(found.args, dict(found.environ or {}), list(found.secrets))

    def _read(self) -> None:
        assert self._process.stdout is not None
        for raw in self._process.stdout:
            with self._lock:
                self._lines.append(raw.rstrip("\n"))
                if len(self._lines) > self.backlog:
                    self._lines.popleft()
                    self._skipped += 1
                waiters, self._waiters = self._waiters, []
            _wake(waiters)
        with self._lock:
            self.ended = True
            waiters, self._waiters = self._waiters, []
        _wake(waiters)

    async def next(self, timeout: float) -> tuple[list[str], int]:
        """Up to LOG_BATCH lines (masked), waiting at most `timeout` for the first; and how
        many were dropped since the last call."""
        woken = asyncio.Event()
        with self._lock:
            waiting = not self._lines and not self.ended
            if waiting:
                self._waiters.append((asyncio.get_running_loop(), woken))
        if waiting:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(woken.wait(), timeout)
        return self.take()

    def take(self) -> tuple[list[str], int]:
        with self._lock:
            batch = [self._lines.popleft() for _ in range(min(LOG_BATCH, len(self._lines)))]
            skipped, self._skipped = self._skipped, 0
        return [mask_known(line, self.secrets) for line in batch], skipped

    def all(self) -> list[str]:
        """Every line until the command ends (a log not followed)."""
        self._reader.join()
        lines: list[str] = []
        while batch := self.take()[0]:
            lines += batch
        return lines

    def close(self) -> None:
        if self._process.poll() is None:
            self._process.kill()
        self._process.wait()


def _wake(waiters: list[tuple[asyncio.AbstractEventLoop, asyncio.Event]]) -> None:
    for loop, woken in waiters:
        with contextlib.suppress(RuntimeError):  # its loop closed: the server stops
            loop.call_soon_threadsafe(woken.set)


async def sse_events(source: LogSource, request: Request, batch: Callable[[list[str], int], str], ended: str,
                 allowed: Callable[[], bool], refused: str) -> AsyncIterator[str]:
    """The Server-Sent Events of a log: `batch(lines, skipped)` for each batch, a keep-alive
    comment after KEEP_ALIVE s of silence, `ended` when the log ends. A stream is one request
    that may last hours: every RECHECK s, `allowed()` (in a worker thread) says whether its
    credentials still hold — a revoked token, a logout or a scope taken away ends it with
    `refused`. The source is closed at the end, however it comes."""
    from starlette.concurrency import run_in_threadpool

    quiet, checked = 0.0, time.monotonic()
    try:
        while not await request.is_disconnected():
            if time.monotonic() - checked > RECHECK:
                checked = time.monotonic()
                if not await run_in_threadpool(allowed):
                    yield refused
                    return
            lines, skipped = await source.next(1.0)
            if lines or skipped:
                quiet = 0.0
                yield batch(lines, skipped)
            elif source.ended:
                yield ended
                return
            else:
                quiet += 1.0
                if quiet >= KEEP_ALIVE:
                    quiet = 0.0
                    yield ": keep-alive\n\n"
    finally:
        await run_in_threadpool(source.close)

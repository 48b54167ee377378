"""Long operations as jobs: each runs in a thread of its own, so it goes on when the client
that started it goes away; its events (envplane.events, as JSON) are kept in order, numbered
from 1, and whoever watches — now or later, once or again — reads them from any number on.

A job ends `ok`, `failed` (its problem document says why, as the API would have answered),
`interrupted`, or `nothing` (what was asked for held already: NothingToDo). The server keeps
the newest KEEP finished jobs and every running one.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
import uuid
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from envplane.errors import EnvplaneError, Interrupted, NothingToDo
from envplane.events import Event, as_dict
from envplane.secret import mask_known
from envplane.server import problems

log = logging.getLogger("envplane.server")

State = Literal["running", "ok", "failed", "interrupted", "nothing"]
KEEP = 200  # finished jobs remembered
MAX_RUNNING = 16  # jobs at once; more is refused (429), not queued out of sight


@dataclass
class Job:
    id: str
    kind: str  # up, down, preview-up, preview-down, release, promote, rollback
    app: str
    env: str | None
    instance: str | None
    by: str  # the principal's name
    created_at: float = field(default_factory=time.time)
    finished_at: float | None = None
    state: State = "running"
    result: dict[str, Any] | None = None
    problem: dict[str, Any] | None = None
    events: list[dict[str, Any]] = field(default_factory=list)
    _changed: threading.Condition = field(default_factory=threading.Condition, repr=False)
    _watchers: list[tuple[asyncio.AbstractEventLoop, asyncio.Event]] = field(default_factory=list, repr=False)

    def summary(self) -> dict[str, Any]:
        return {"id": self.id, "kind": self.kind, "app": self.app, "env": self.env, "instance": self.instance,
                "by": self.by, "state": self.state, "created_at": self.created_at,
                "finished_at": self.finished_at, "events": len(self.events), "result": self.result,
                "problem": self.problem}

    @property
    def done(self) -> bool:
        return self.state != "running"

    def add(self, event: Event) -> None:
        data = {k: mask_known(v) if isinstance(v, str) else v for k, v in as_dict(event).items()}
        with self._changed:
            data["seq"] = len(self.events) + 1
            self.events.append(data)
        self._wake()

    def finish(self, state: State, result: Mapping[str, Any] | None = None,
               problem: dict[str, Any] | None = None) -> None:
        with self._changed:
            self.state, self.finished_at = state, time.time()
            self.result = dict(result) if result is not None else None
            self.problem = problem
        self._wake()

    def since(self, after: int) -> tuple[list[dict[str, Any]], bool]:
        """The events numbered above `after`, and whether the job has ended."""
        with self._changed:
            return self.events[max(after, 0):], self.done

    async def changed(self, timeout: float) -> None:
        """Wait (in the server's event loop) until an event comes or the job ends, at most `timeout`."""
        loop, woken = asyncio.get_running_loop(), asyncio.Event()
        with self._changed:
            self._watchers.append((loop, woken))
        try:
            await asyncio.wait_for(woken.wait(), timeout)
        except TimeoutError:
            pass
        finally:
            with self._changed:
                self._watchers.remove((loop, woken))

    def _wake(self) -> None:
        with self._changed:
            watchers = list(self._watchers)
        for loop, woken in watchers:
            with contextlib.suppress(RuntimeError):  # its loop closed: the server is stopping
                loop.call_soon_threadsafe(woken.set)


Work = Callable[[Callable[[Event], None]], Mapping[str, Any] | None]


class Jobs:
    """The server's jobs, newest last."""

    def __init__(self, keep: int = KEEP, max_running: int = MAX_RUNNING) -> None:
        self.keep, self.max_running = keep, max_running
        self._jobs: OrderedDict[str, Job] = OrderedDict()
        self._lock = threading.Lock()
        self._threads: list[threading.Thread] = []

    def start(self, kind: str, app: str, env: str | None, instance: str | None, by: str, work: Work,
              on_end: Callable[[Job], None] = lambda job: None,
              on_start: Callable[[Job], None] = lambda job: None) -> Job:
        """Run `work(report)` in a thread as a new job; `on_start` hears it before its work
        starts (in that thread), `on_end` once it ended. Busy (429) when MAX_RUNNING jobs run already."""
        job = Job(uuid.uuid4().hex, kind, app, env, instance, by)
        with self._lock:
            running = sum(1 for j in self._jobs.values() if not j.done)
            if running >= self.max_running:
                raise problems.Busy(f"{running} jobs are running on this server",
                                    "wait until one ends (GET /api/v1/jobs) and try again")
            self._add(job)
            thread = threading.Thread(target=self._run, args=(job, work, on_end, on_start), daemon=True,
                                      name=f"job-{job.id[:8]}")
            self._threads = [t for t in self._threads if t.is_alive()] + [thread]
        thread.start()
        return job

    def run(self, kind: str, app: str, env: str | None, instance: str | None, by: str, work: Work,
            on_end: Callable[[Job], None] = lambda job: None) -> Job:
        """Run `work(report)` as a job in this thread (a queue's worker, which bounds how many
        run at once itself); return the job once it ended."""
        job = Job(uuid.uuid4().hex, kind, app, env, instance, by)
        with self._lock:
            self._add(job)
        self._run(job, work, on_end)
        return job

    def get(self, job_id: str) -> Job | None:
        with self._lock:
            return self._jobs.get(job_id)

    def all(self) -> list[Job]:
        with self._lock:
            return list(self._jobs.values())

    def wait(self, timeout: float) -> bool:
        """Wait for the running jobs to end (the server stops); False if some still run."""
        deadline = time.monotonic() + timeout
        with self._lock:
            threads = list(self._threads)
        for thread in threads:
            thread.join(max(0.0, deadline - time.monotonic()))
        return not any(t.is_alive() for t in threads)

    def _run(self, job: Job, work: Work, on_end: Callable[[Job], None],
             on_start: Callable[[Job], None] = lambda job: None) -> None:
        try:
            on_start(job)
            result = work(job.add)
            job.finish("ok", result)
        except NothingToDo as done:
            job.finish("nothing", {"message": mask_known(done.message), "hint": mask_known(done.hint)})
        except Interrupted as stopped:
            job.finish("interrupted",
                       problem=problems.body(409, stopped.message, stopped.hint, "interrupted"))
        except EnvplaneError as error:
            job.finish("failed", problem=problems.of_error(error))
        except Exception as error:  # a bug: the job says failed, the server's log has the traceback
            log.exception("job %s (%s of %s) failed", job.id, job.kind, job.app)
            why = f"internal error: {type(error).__name__}: {error}"
            job.finish("failed", problem=problems.body(500, why, "the server's log has the traceback"))
        finally:
            if not job.done:
                job.finish("failed", problem=problems.body(500, "the job stopped without an outcome"))
            try:
                on_end(job)
            except Exception:
                log.exception("job %s: recording its end failed", job.id)

    def _add(self, job: Job) -> None:
        self._jobs[job.id] = job
        self._forget_old()

    def _forget_old(self) -> None:
        finished = [j.id for j in self._jobs.values() if j.done]
        for job_id in finished[: max(0, len(finished) - self.keep)]:
            del self._jobs[job_id]

"""Long operations as jobs: each runs in a thread of its own, so it goes on when the client
that started it goes away; its events (envplane.events, as JSON) are kept in order, numbered
from 1, and whoever watches — now or later, once or again — reads them from any number on.

A job ends `ok`, `failed` (its problem document says why, as the API would have answered),
`interrupted`, or `nothing` (what was asked for held already: NothingToDo). The server keeps
the newest KEEP finished jobs and every running one.

With a state store (the server's), every job and each of its events is written there as it
happens (state.jobs), so a job, its outcome and its events are still there after a restart;
the jobs a server left running when it died are `interrupted` when it starts again. Memory
holds only the jobs this process runs or ran lately (their watchers wait on them).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import queue
import threading
import time
import uuid
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Literal

from envplane.errors import EnvplaneError, Interrupted, NothingToDo
from envplane.events import Event, as_dict
from envplane.secret import mask_known
from envplane.server import problems
from envplane.state import jobs as saved

if TYPE_CHECKING:
    from envplane.state.db import Store

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
    created_at: float = field(default_factory=lambda: _now())
    finished_at: float | None = None
    state: State = "running"
    result: dict[str, Any] | None = None
    problem: dict[str, Any] | None = None
    events: list[dict[str, Any]] = field(default_factory=list)
    # Where it is written as it happens (None: memory only), and how many finished jobs it keeps.
    store: Store | None = field(default=None, repr=False)
    writer: Writer | None = field(default=None, repr=False)  # writes its events to `store`
    keep: int = field(default=KEEP, repr=False)
    # A job read back from the store (another process ran it): how many events it has there;
    # they are read from the store when asked for. None: this process runs it.
    stored_events: int | None = field(default=None, repr=False)
    _changed: threading.Condition = field(default_factory=threading.Condition, repr=False)
    _watchers: list[tuple[asyncio.AbstractEventLoop, asyncio.Event]] = field(default_factory=list, repr=False)

    def summary(self) -> dict[str, Any]:
        return {"id": self.id, "kind": self.kind, "app": self.app, "env": self.env, "instance": self.instance,
                "by": self.by, "state": self.state, "created_at": self.created_at,
                "finished_at": self.finished_at, "events": self._count(), "result": self.result,
                "problem": self.problem}

    @classmethod
    def of_record(cls, record: saved.Record, store: Store) -> Job:
        return cls(record.id, record.kind, record.app, record.env, record.instance, record.by,
                   record.created_at.timestamp(),
                   record.finished_at.timestamp() if record.finished_at is not None else None,
                   record.state,  # type: ignore[arg-type]  # the store keeps only our states
                   record.result, record.problem, store=store, stored_events=record.events)

    def _count(self) -> int:
        with self._changed:
            return len(self.events) if self.stored_events is None else self.stored_events

    @property
    def done(self) -> bool:
        return self.state != "running"

    def add(self, event: Event) -> None:
        data = {k: mask_known(v) if isinstance(v, str) else v for k, v in as_dict(event).items()}
        with self._changed:
            seq = data["seq"] = len(self.events) + 1
            self.events.append(data)
            if self.writer is not None:  # under the lock: in the order of their numbers
                self.writer.event(self.id, seq, data)
        self._wake()

    def finish(self, state: State, result: Mapping[str, Any] | None = None,
               problem: dict[str, Any] | None = None) -> None:
        with self._changed:
            self.state, self.finished_at = state, _now()
            self.result = dict(result) if result is not None else None
            self.problem = problem
        if self.writer is not None and not self.writer.flush(FLUSH_TIMEOUT):
            log.warning("job %s: its events were not all written to the state store in %ss", self.id,
                        FLUSH_TIMEOUT)
        self._write("its outcome", saved.finish, self.id, state, _moment(self.finished_at), self.result,
                    problem, self.keep)
        self._wake()

    def since(self, after: int) -> tuple[list[dict[str, Any]], bool]:
        """The events numbered above `after`, and whether the job has ended."""
        if self.stored_events is not None and self.store is not None:
            return saved.events(self.store, self.id, max(after, 0)), True
        with self._changed:
            return self.events[max(after, 0):], self.done

    def _write(self, what: str, write: Callable[..., Any], *args: Any) -> None:
        """Write to the store; a store that fails loses the row, not the job (the log says so)."""
        if self.store is None:
            return
        try:
            write(self.store, *args)
        except Exception:
            log.exception("job %s: writing %s to the state store failed", self.id, what)

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
FLUSH_TIMEOUT = 30.0  # seconds a job's end waits for its events to be in the store
BATCH = 500  # events written in one transaction at most


class Writer:
    """Writes jobs' events to the store in a thread of its own, as many as wait in one
    transaction: a job's work never waits for the store (a commit takes milliseconds, tens on
    a busy disk, and a deploy can log hundreds of lines). Events are written in the order they
    came; `flush` waits until those that came before it are written."""

    def __init__(self, store: Store) -> None:
        self.store = store
        # (job id, number, event) to write, or an Event to set once those before it are written
        self._queue: queue.SimpleQueue[tuple[str, int, dict[str, Any]] | threading.Event] = (
            queue.SimpleQueue())
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None

    def event(self, job_id: str, seq: int, data: dict[str, Any]) -> None:
        self._started()
        self._queue.put((job_id, seq, data))

    def flush(self, timeout: float) -> bool:
        """Wait until every event put before is written (or failed: the log says so)."""
        done = threading.Event()
        self._started()
        self._queue.put(done)
        return done.wait(timeout)

    def _started(self) -> None:
        with self._lock:
            if self._thread is None:
                self._thread = threading.Thread(target=self._loop, daemon=True, name="job-events")
                self._thread.start()

    def _loop(self) -> None:
        while True:
            batch = [self._queue.get()]
            with contextlib.suppress(queue.Empty):
                while len(batch) < BATCH:
                    batch.append(self._queue.get_nowait())
            events = [item for item in batch if isinstance(item, tuple)]
            if events:
                try:
                    saved.add_events(self.store, events)
                except Exception:
                    log.exception("writing %d job events to the state store failed", len(events))
            for item in batch:
                if isinstance(item, threading.Event):
                    item.set()


class Jobs:
    """The server's jobs, newest last."""

    def __init__(self, keep: int = KEEP, max_running: int = MAX_RUNNING, store: Store | None = None,
                 server: str | None = None) -> None:
        self.keep, self.max_running, self.store = keep, max_running, store
        self.server = server or saved.this_server()  # this process, as its jobs' rows name it
        self.writer = Writer(store) if store is not None else None
        self._jobs: OrderedDict[str, Job] = OrderedDict()
        self._lock = threading.Lock()
        self._threads: list[threading.Thread] = []

    def start(self, kind: str, app: str, env: str | None, instance: str | None, by: str, work: Work,
              on_end: Callable[[Job], None] = lambda job: None,
              on_start: Callable[[Job], None] = lambda job: None) -> Job:
        """Run `work(report)` in a thread as a new job; `on_start` hears it before its work
        starts (in that thread), `on_end` once it ended. Busy (429) when MAX_RUNNING jobs run already."""
        job = self._new(kind, app, env, instance, by)
        with self._lock:
            running = sum(1 for j in self._jobs.values() if not j.done)
            if running >= self.max_running:
                raise problems.Busy(f"{running} jobs are running on this server",
                                    "wait until one ends (GET /api/v1/jobs) and try again")
            self._add(job)  # its place taken under the lock; written to the store outside it
        self._save(job)
        thread = threading.Thread(target=self._run, args=(job, work, on_end, on_start), daemon=True,
                                  name=f"job-{job.id[:8]}")
        with self._lock:
            self._threads = [t for t in self._threads if t.is_alive()] + [thread]
        thread.start()
        return job

    def run(self, kind: str, app: str, env: str | None, instance: str | None, by: str, work: Work,
            on_end: Callable[[Job], None] = lambda job: None) -> Job:
        """Run `work(report)` as a job in this thread (a queue's worker, which bounds how many
        run at once itself); return the job once it ended."""
        job = self._new(kind, app, env, instance, by)
        with self._lock:
            self._add(job)
        self._save(job)
        self._run(job, work, on_end)
        return job

    def get(self, job_id: str) -> Job | None:
        with self._lock:
            found = self._jobs.get(job_id)
        if found is not None or self.store is None:
            return found
        record = saved.get(self.store, job_id)
        return Job.of_record(record, self.store) if record is not None else None

    def all(self) -> list[Job]:
        """Every job kept, oldest first: the store's, with those this process holds as they are now."""
        with self._lock:
            held = dict(self._jobs)
        if self.store is None:
            return list(held.values())
        stored = saved.listing(self.store)
        return [held.get(r.id) or Job.of_record(r, self.store) for r in reversed(stored)]

    def interrupt_left(self) -> list[Job]:
        """The server starts: the jobs a server process of this host left running when it
        ended (none of them runs now) are `interrupted`, their problem says why."""
        if self.store is None:
            return []
        problem = problems.body(409, "the server stopped while this job ran",
                                "look at the instance (GET its status); its lock may be stale — "
                                "run the operation again", "interrupted")
        left = saved.interrupt_running(self.store, self.server.split()[0], datetime.now(UTC), problem)
        for job_id in left:
            log.warning("job %s was running when the server stopped: interrupted", job_id)
        return [job for job in (self.get(job_id) for job_id in left) if job is not None]

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

    def _new(self, kind: str, app: str, env: str | None, instance: str | None, by: str) -> Job:
        return Job(uuid.uuid4().hex, kind, app, env, instance, by, store=self.store, writer=self.writer,
                   keep=self.keep)

    def _save(self, job: Job) -> None:
        """Write the new job to the store before its work starts: a store that cannot take it
        refuses the job (its error is the answer), so no job runs that a restart would lose."""
        if self.store is None:
            return
        try:
            saved.add(self.store, job.id, job.kind, job.app, job.env, job.instance, job.by, self.server,
                      _moment(job.created_at))
        except BaseException:
            with self._lock:
                self._jobs.pop(job.id, None)
            raise

    def _add(self, job: Job) -> None:
        self._jobs[job.id] = job
        self._forget_old()

    def _forget_old(self) -> None:
        finished = [j.id for j in self._jobs.values() if j.done]
        for job_id in finished[: max(0, len(finished) - self.keep)]:
            del self._jobs[job_id]


def _now() -> float:
    """Now, to the microsecond: what the store keeps reads back as the same number."""
    return datetime.now(UTC).timestamp()


def _moment(at: float | None) -> datetime:
    return datetime.fromtimestamp(at if at is not None else _now(), UTC)

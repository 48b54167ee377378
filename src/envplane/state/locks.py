"""One lock per environment instance, kept in the `locks` table.

Locks on different instances never touch each other. A lock is taken over when its
lease expired, or when its holder is provably gone: only a holder on our kernel boot
(/proc/sys/kernel/random/boot_id) and in our PID namespace can be judged by its pid,
since a pid elsewhere (another machine, another CI container with our hostname) names
some other process or none. The Lock says so in `note`.

A lease is short; `heartbeat` renews it from a background thread for as long as the
operation runs, and `Lock.check` lets each step stop if the lock was taken over anyway
(the process was frozen longer than the lease, the state store was out of reach).
"""

from __future__ import annotations

import functools
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from types import TracebackType

from sqlalchemy import Select, delete, select

from envplane.errors import LockError
from envplane.state.clock import Clock, as_utc, utc_now
from envplane.state.db import Store
from envplane.state.guard import refuse_secrets
from envplane.state.models import LockRow

# The heartbeat renews every TTL / BEATS, so a lease survives BEATS - 1 missed beats;
# a crashed holder that cannot be judged by its pid frees the instance after one TTL.
DEFAULT_TTL = 300.0
BEATS = 5
POLL_SECONDS = 0.2


@dataclass(frozen=True)
class Holder:
    """Who holds a lock, as shown to the user who has to wait for it."""

    holder: str
    pid: int
    host: str
    acquired_at: datetime
    expires_at: datetime

    def describe(self) -> str:
        since = self.acquired_at.strftime("%Y-%m-%d %H:%M:%S UTC")
        return f"{self.holder} (pid {self.pid} on {self.host}, since {since})"


@dataclass
class Lock:
    """A held lock; a context manager that releases it on exit."""

    store: Store
    app: str
    env: str
    instance: str
    token: str
    holder: Holder
    note: str = ""  # set when a stale lock was taken over
    released: bool = field(default=False)

    @property
    def name(self) -> str:
        return f"{self.app}/{self.env}/{self.instance}"

    def release(self) -> bool:
        return release(self)

    def check(self) -> None:
        """Raise LockError when this lock is no longer ours (taken over after its lease ran out)."""
        with self.store.session() as session:
            if session.scalars(select(LockRow.id).where(LockRow.token == self.token)).first():
                return
        now = holder_of(self.store, self.app, self.env, self.instance)
        if now is None:
            raise LockError(f"the lock of {self.name} is no longer held: {self.holder.holder} "
                            "stopped before its next step", hint="run the command again")
        raise LockError(
            f"the lock of {self.name} was taken over by {now.describe()}: "
            f"{self.holder.holder} stopped before its next step",
            hint=f"check what {now.holder} did to the instance, then run the command again",
        )

    def __enter__(self) -> Lock:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        release(self)


@functools.cache
def this_boot() -> str | None:
    """The kernel's id of this boot: equal only on one machine between two reboots."""
    try:
        return Path("/proc/sys/kernel/random/boot_id").read_text(encoding="ascii").strip() or None
    except OSError:
        return None  # not Linux: leases decide


@functools.cache
def this_pid_namespace() -> str | None:
    """`pid:[4026531836]`; unique on one boot, so compared together with boot_id."""
    try:
        return os.readlink("/proc/self/ns/pid")
    except OSError:
        return None


@dataclass(frozen=True)
class Me:
    """A process as it appears in a lock row: where its pid means something, and when it
    started (None: not compared)."""

    holder: str
    pid: int = field(default_factory=os.getpid)
    host: str = field(default_factory=socket.gethostname)
    boot_id: str | None = field(default_factory=this_boot)
    pid_ns: str | None = field(default_factory=this_pid_namespace)
    started: int | None = None

    @classmethod
    def this(cls, holder: str, pid: int | None = None) -> Me:
        """This process (or `pid` of this namespace), start time included."""
        pid = os.getpid() if pid is None else pid
        return cls(holder, pid=pid, started=start_time(pid))


def start_time(pid: int) -> int | None:
    """When pid started, in clock ticks after boot (field 22 of /proc/PID/stat)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text(encoding="ascii", errors="replace")
    except OSError:
        return None
    fields = stat.rpartition(")")[2].split()  # the name before it may hold spaces and ')'
    try:
        return int(fields[19])
    except (IndexError, ValueError):
        return None


def acquire(
    store: Store,
    app: str,
    env: str,
    instance: str,
    holder: str,
    wait: bool = False,
    timeout: float = 600.0,
    on_wait: Callable[[Holder], None] | None = None,
    ttl: float = DEFAULT_TTL,
    clock: Clock = utc_now,
    me: Me | None = None,
) -> Lock:
    """Take the lock of (app, env, instance), waiting up to `timeout` seconds if `wait`.

    `on_wait` is called with the current holder each time a new holder blocks us.
    """
    refuse_secrets(holder=holder)
    me = me or Me.this(holder)
    deadline = time.monotonic() + timeout
    seen: Holder | None = None
    while True:
        lock, current = _try_take(store, app, env, instance, me, ttl, clock)
        if lock:
            return lock
        assert current is not None
        name = f"{app}/{env}/{instance}"
        if not wait:
            raise _held(name, current, "", "wait for that operation to finish, or run again without "
                        "--no-wait to wait for it")
        if time.monotonic() >= deadline:
            raise _held(name, current, f" (gave up after {timeout:g}s)",
                        "that operation is still running: wait for it to finish and run again "
                        "(a lock whose holder died is taken over at once)")
        if on_wait and current != seen:
            on_wait(current)
        seen = current
        time.sleep(min(POLL_SECONDS, max(deadline - time.monotonic(), 0.0)))


def release(lock: Lock) -> bool:
    """Drop the lock if it is still ours; False when someone took it over meanwhile."""
    if lock.released:
        return False
    lock.released = True
    with lock.store.serialised("locks") as session:
        result = session.execute(delete(LockRow).where(LockRow.token == lock.token))
        return bool(getattr(result, "rowcount", 0))


def renew(lock: Lock, ttl: float = DEFAULT_TTL, clock: Clock = utc_now) -> None:
    """Push the lease out; LockError when the lock is no longer ours."""
    with lock.store.serialised("locks") as session:
        row = session.scalars(select(LockRow).where(LockRow.token == lock.token)).first()
        if row is None:
            raise LockError(
                f"the lock of {lock.name} is no longer held by {lock.holder.holder}",
                hint="it expired and was taken over; re-run the operation",
            )
        row.expires_at = as_utc(clock()) + timedelta(seconds=ttl)


class Heartbeat(threading.Thread):
    """Renews a lock's lease every `interval` seconds until stopped or the lock is lost."""

    def __init__(self, lock: Lock, ttl: float, interval: float, clock: Clock) -> None:
        super().__init__(name=f"envplane-lock-{lock.name}", daemon=True)
        self.lock, self.ttl, self.interval, self.clock = lock, ttl, interval, clock
        self.lost: LockError | None = None
        self._stop_event = threading.Event()

    def run(self) -> None:
        while not self._stop_event.wait(self.interval):
            try:
                renew(self.lock, self.ttl, self.clock)
            except LockError as exc:
                self.lost = exc  # taken over: the next step's Lock.check stops the operation
                return
            except Exception:
                # The store is out of reach for a moment: the lease has room for a few
                # missed beats, and the next step's Lock.check decides.
                continue

    def stop(self) -> None:
        self._stop_event.set()
        if self.is_alive() and threading.current_thread() is not self:
            self.join()


@contextmanager
def heartbeat(lock: Lock, ttl: float = DEFAULT_TTL, interval: float | None = None,
              clock: Clock = utc_now) -> Iterator[Heartbeat]:
    """Keep `lock` for as long as the block runs, renewing its lease of `ttl` seconds."""
    beat = Heartbeat(lock, ttl, ttl / BEATS if interval is None else interval, clock)
    beat.start()
    try:
        yield beat
    finally:
        beat.stop()


def holder_of(store: Store, app: str, env: str, instance: str) -> Holder | None:
    with store.session() as session:
        row = session.scalars(_query(app, env, instance)).first()
        return _holder(row) if row else None


def _try_take(
    store: Store, app: str, env: str, instance: str, me: Me, ttl: float, clock: Clock
) -> tuple[Lock | None, Holder | None]:
    now = as_utc(clock())
    with store.serialised("locks") as session:
        row = session.scalars(_query(app, env, instance)).first()
        note = ""
        if row is not None:
            reason = _stale_reason(row, now, me)
            if not reason:
                return None, _holder(row)
            note = f"took over the lock of {_holder(row).describe()}: {reason}"
            session.delete(row)
            session.flush()
        token = uuid.uuid4().hex
        new = LockRow(app=app, env=env, instance=instance, holder=me.holder, pid=me.pid,
                      host=me.host, boot_id=me.boot_id, pid_ns=me.pid_ns, started=me.started,
                      token=token, acquired_at=now, expires_at=now + timedelta(seconds=ttl))
        session.add(new)
    return Lock(store, app, env, instance, token, _holder(new), note), None


def _stale_reason(row: LockRow, now: datetime, me: Me) -> str:
    if row.expires_at <= now:
        return "its lease expired"
    return gone_here(row.pid, row.started, row.boot_id, row.pid_ns, me)


def gone_here(pid: int, started: int | None, boot_id: str | None, pid_ns: str | None, me: Me) -> str:
    """Why process `pid` of kernel boot `boot_id` and PID namespace `pid_ns` is gone, judged
    by `me`; "" while it runs, and when `me` cannot tell: on another machine, boot or PID
    namespace its pid says nothing here."""
    if boot_id is None or boot_id != me.boot_id or pid_ns is None or pid_ns != me.pid_ns:
        return ""
    return process_gone(pid, started)


def process_gone(pid: int, started: int | None) -> str:
    """Why process `pid` of this PID namespace, started at `started`, is gone; "" while it runs."""
    if pid <= 0:
        return "its pid is not a process"
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return "that process is gone"
    except PermissionError:
        pass  # exists, owned by another user
    now = start_time(pid)
    if started is not None and now is not None and now != started:
        return "that process is gone (its pid was reused)"
    return ""


def _held(name: str, current: Holder, suffix: str, hint: str) -> LockError:
    # The CLI waits by default; only --no-wait, or a wait that timed out, gets here: the
    # hint names a flag only to the one who passed it (#10.9).
    return LockError(f"{name} is locked by {current.describe()}{suffix}", hint=hint)


def _query(app: str, env: str, instance: str) -> Select[LockRow]:
    return select(LockRow).where(
        LockRow.app == app, LockRow.env == env, LockRow.instance == instance
    )


def _holder(row: LockRow) -> Holder:
    return Holder(row.holder, row.pid, row.host, row.acquired_at, row.expires_at)

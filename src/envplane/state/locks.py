"""One lock per environment instance, kept in the `locks` table.

Locks on different instances never touch each other. A lock whose holder died on
this host, or whose lease expired, is taken over and the Lock says so in `note`.
"""

from __future__ import annotations

import os
import socket
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from types import TracebackType

from sqlalchemy import Select, delete, select

from envplane.errors import LockError
from envplane.state.clock import Clock, as_utc, utc_now
from envplane.state.db import Store
from envplane.state.guard import refuse_secrets
from envplane.state.models import LockRow

DEFAULT_TTL = 3600.0
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

    def __enter__(self) -> Lock:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        release(self)


@dataclass(frozen=True)
class Me:
    """This process, as it will appear in the lock row."""

    holder: str
    pid: int = field(default_factory=os.getpid)
    host: str = field(default_factory=socket.gethostname)


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
    me = me or Me(holder)
    deadline = time.monotonic() + timeout
    seen: Holder | None = None
    while True:
        lock, current = _try_take(store, app, env, instance, me, ttl, clock)
        if lock:
            return lock
        assert current is not None
        name = f"{app}/{env}/{instance}"
        if not wait:
            raise _held(name, current, "")
        if time.monotonic() >= deadline:
            raise _held(name, current, f" (gave up after {timeout:g}s)")
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
    """Push the lease out for a long operation on another host's behalf."""
    with lock.store.serialised("locks") as session:
        row = session.scalars(select(LockRow).where(LockRow.token == lock.token)).first()
        if row is None:
            raise LockError(
                f"the lock of {lock.name} is no longer held by {lock.holder.holder}",
                hint="it expired and was taken over; re-run the operation",
            )
        row.expires_at = as_utc(clock()) + timedelta(seconds=ttl)


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
            reason = _stale_reason(row, now)
            if not reason:
                return None, _holder(row)
            note = f"took over the lock of {_holder(row).describe()}: {reason}"
            session.delete(row)
            session.flush()
        token = uuid.uuid4().hex
        new = LockRow(app=app, env=env, instance=instance, holder=me.holder, pid=me.pid,
                      host=me.host, token=token, acquired_at=now,
                      expires_at=now + timedelta(seconds=ttl))
        session.add(new)
    return Lock(store, app, env, instance, token, _holder(new), note), None


def _stale_reason(row: LockRow, now: datetime) -> str:
    if row.expires_at <= now:
        return "its lease expired"
    if row.host == socket.gethostname() and not _alive(row.pid):
        return "that process is gone"
    return ""


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # exists, owned by another user
    return True


def _held(name: str, current: Holder, suffix: str) -> LockError:
    return LockError(
        f"{name} is locked by {current.describe()}{suffix}",
        hint="wait for that operation to finish, or pass --wait",
    )


def _query(app: str, env: str, instance: str) -> Select[LockRow]:
    return select(LockRow).where(
        LockRow.app == app, LockRow.env == env, LockRow.instance == instance
    )


def _holder(row: LockRow) -> Holder:
    return Holder(row.holder, row.pid, row.host, row.acquired_at, row.expires_at)

"""The scheduler inside `envplane serve` (issue 14): the work nobody should have to type.

Jobs, each for every app registered with the server:
- `preview-gc` (every hour): previews of closed PRs past their TTL, idle ones, partial purges
  (service.previews.gc, as `envplane preview gc`);
- `backup` (every 15 minutes): the backups the DR schedule says are due (`backup.every`), and
  the DR alarms that stand (dr/schedule.py: a schedule not met, the RPO missed, a drill due);
- `drill` (every 6 hours): a drill of production into dr when its last good one is older
  than `dr.drill_every` and there is a verified backup to restore.

Every run is a row of the server's store (job, app, started, finished, outcome, message,
next run). A job that has not succeeded within twice its interval, or whose last run
failed, is an alert — never silence (coolify#4539, #7779: weeks without a backup while
the mails said "done") — shown by `alerts()` (the API and the dashboard call it), in
/metrics, and POSTed to ENVPLANE_ALERT_WEBHOOK when it starts and when it ends.

One job failing never stops the others: each run is its own thread and its own try. Two
servers on one store never run a job at once: a run holds the job's lock (state/locks.py,
instance `@scheduler/{job}` of the app) and, under it, looks again at the store, so a run
another server just finished is not repeated.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import threading
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy import select

from envplane.errors import EnvplaneError, LockError, UsageError
from envplane.secret import mask_known
from envplane.state import locks
from envplane.state import scheduler_runs as runs
from envplane.state.clock import Clock, utc_now
from envplane.state.db import Store
from envplane.state.models import ServerAppRow

if TYPE_CHECKING:
    from envplane.lifecycle import Session
    from envplane.spec.load import Project

log = logging.getLogger("envplane.scheduler")

LOCK_ENV = "@scheduler"  # the jobs' locks: (app, "@scheduler", job), a name no env can have
LOCK_TTL = 120.0
TICK = 30.0  # seconds between looks at what is due
LATE = 2  # a job is late when it has not succeeded for LATE intervals
STOP_TIMEOUT = 600.0
ACTOR = "envplane-scheduler"
ENABLED = "ENVPLANE_SCHEDULER"  # `off`: serve starts no scheduler (its jobs then go late)
ALERT_WEBHOOK = "ENVPLANE_ALERT_WEBHOOK"
WEBHOOK_TIMEOUT = 10.0


@dataclass(frozen=True)
class Done:
    """How one run ended."""

    ok: bool
    message: str
    detail: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Work:
    """What a job's run works with: the app as its spec says now, the server's environment."""

    project: Project
    environ: Mapping[str, str]
    clock: Clock

    def acting(self) -> dict[str, str]:
        """The server's environment, with the scheduler as who acts (the audit log's name)."""
        return {**self.environ, "ENVPLANE_USER": ACTOR}

    def session(self) -> Session:
        from envplane import lifecycle

        session = lifecycle.open_session(self.project, self.acting())
        session.wait = False  # an instance someone else works on is tried again next time
        return session


@dataclass(frozen=True)
class JobKind:
    name: str
    variable: str  # the server's environment variable that sets its interval (or `off`)
    default: str
    work: Callable[[Work], Done]
    about: str


def _preview_gc(work: Work) -> Done:
    from envplane.service import previews

    idle = work.environ.get("ENVPLANE_PREVIEW_IDLE", "14d")
    done = previews.gc(work.project, idle=idle, now=work.clock(), environ=work.acting())
    if not done.ever_deployed:
        return Done(True, "no preview was ever deployed")
    bad = [c for c in done.previews if c.outcome in ("failed", "partial")]
    lines = [f"{c.outcome} {c.instance}: {c.reason}" + (f" ({c.detail})" if c.detail else "")
             for c in done.previews]
    return Done(not bad, "; ".join(lines) or "nothing to collect", done.as_dict())


def _backup(work: Work) -> Done:
    from envplane.dr import service as dr

    session, project, environ = work.session(), work.project, work.environ
    warnings: list[str] = []
    made, failed = [], []
    for env in dr.due_envs(session, project, environ, work.clock):
        try:
            opened = dr.open_instance(project, env, None, environ)
            outcome = dr.run_backup(session, opened, warnings.append, lambda *part: None, work.clock)
        except EnvplaneError as exc:
            failed.append(f"{env}: {exc.message}")
            continue
        made.append(f"{env}: {outcome.result.manifest.id}")
    _, alarms = dr.status(session, project, environ, work.clock)
    detail = {"backed_up": made, "failed": failed, "warnings": warnings,
              "alarms": [{"env": a.env, "kind": a.kind, "message": a.message} for a in alarms]}
    parts = ([f"backed up {', '.join(made)}"] if made else []) + [f"failed {f}" for f in failed]
    return Done(not failed, "; ".join(parts) or "no backup is due", detail)


def _drill(work: Work) -> Done:
    from envplane.dr import drill as drills
    from envplane.dr import service as dr

    session, project, now = work.session(), work.project, work.clock()
    if "production" not in project.envs or "dr" not in project.envs:
        return Done(True, "no production and dr envs to drill")
    facts, _ = dr.status(session, project, work.environ, work.clock)
    due = [f for f in facts if f.env == "production" and f.newest_verified is not None
           and (f.last_good_drill is None or now - f.last_good_drill > f.drill_every)]
    if not due:
        return Done(True, "no drill is due")
    report = drills.run(session, project, "production", "dr", None, work.environ, lambda *part: None,
                        lambda *step: None, 300.0, work.clock)
    summary = f"drill of production into dr: {'passed' if report.ok else 'FAILED'}"
    return Done(report.ok, "; ".join([summary, *report.problems]), report.as_dict())


KINDS = (
    JobKind("preview-gc", "ENVPLANE_SCHEDULE_PREVIEW_GC", "1h", _preview_gc,
            "previews of closed PRs past their TTL, idle previews, partial purges"),
    JobKind("backup", "ENVPLANE_SCHEDULE_BACKUP", "15m", _backup,
            "the backups the DR schedule says are due, and its alarms"),
    JobKind("drill", "ENVPLANE_SCHEDULE_DRILL", "6h", _drill,
            "a drill of production into dr when dr.drill_every says one is due"),
)


def intervals(environ: Mapping[str, str], kinds: tuple[JobKind, ...] = KINDS) -> dict[str, timedelta | None]:
    """Each job's interval (None: `off`); a value that is not a duration is a usage error
    at the server's start, not a job that silently never runs."""
    from envplane.preview import duration

    found: dict[str, timedelta | None] = {}
    for kind in kinds:
        text = environ.get(kind.variable, "").strip() or kind.default
        if text == "off":
            found[kind.name] = None
            continue
        try:
            every = duration(text)
        except UsageError:
            raise UsageError(f"{kind.variable}={text!r} is not an interval",
                             "write a number and a unit (30m, 1h, 1d), or `off`") from None
        if every <= timedelta(0):
            raise UsageError(f"{kind.variable}={text!r} is not an interval", "it must be longer than 0s")
        found[kind.name] = every
    return found


# --- what the API, the dashboard and /metrics read ---


@dataclass(frozen=True)
class Alert:
    id: str  # stable while it stands: job/app/kind (and env for a DR alarm)
    job: str
    app: str
    kind: str  # failed, late, never, dr
    message: str
    since: datetime | None

    def as_dict(self) -> dict[str, Any]:
        return {"id": self.id, "job": self.job, "app": self.app, "kind": self.kind, "message": self.message,
                "since": self.since.isoformat() if self.since else None}


@dataclass(frozen=True)
class JobState:
    job: str
    app: str
    every: timedelta | None  # None: off
    latest: runs.Run | None
    last_success: datetime | None
    next_run_at: datetime | None
    alerts: tuple[Alert, ...]

    @property
    def state(self) -> str:
        """off, never (not run yet), running, ok, failed, interrupted; `late` when it has
        not succeeded within its expected interval although its last run did not fail."""
        if self.every is None:
            return "off"
        if any(a.kind in ("late", "never") for a in self.alerts) and (
                self.latest is None or self.latest.outcome == "ok"):
            return "late"
        return "never" if self.latest is None else self.latest.outcome

    def as_dict(self) -> dict[str, Any]:
        return {"job": self.job, "app": self.app, "state": self.state,
                "every_seconds": self.every.total_seconds() if self.every else None,
                "last_run": self.latest.as_dict() if self.latest else None,
                "last_success": self.last_success.isoformat() if self.last_success else None,
                "next_run_at": self.next_run_at.isoformat() if self.next_run_at else None,
                "alerts": [a.as_dict() for a in self.alerts]}


def _span(delta: timedelta) -> str:
    from envplane.dr.schedule import span

    return span(delta)


def judge(job: str, app: str, every: timedelta | None, summary: runs.Summary | None, watched_since: datetime,
          now: datetime) -> list[Alert]:
    """The alerts of one job (pure): its last run failed; it has not succeeded for LATE
    intervals; it never ran although it should have; the DR alarms its last backup run found."""
    if every is None:
        return []
    key = f"{job}/{app}"
    expected = every * LATE
    found: list[Alert] = []
    if summary is None:
        if now - watched_since > expected:
            found.append(Alert(f"{key}/never", job, app, "never", f"{job} of {app} has never run (expected "
                               f"every {_span(every)}; is the scheduler running?)", watched_since))
        return found
    ended = summary.finished  # a retry under way does not end the alert of the run before
    if ended is not None and ended.outcome in ("failed", "interrupted"):
        found.append(Alert(f"{key}/failed", job, app, "failed",
                           f"{job} of {app} {ended.outcome} {_span(now - ended.started_at)} ago: "
                           f"{ended.message or 'no message'}", ended.started_at))
    since = summary.last_success or max(summary.first_started, watched_since)
    if now - since > expected:
        what = (f"has not succeeded for {_span(now - since)}" if summary.last_success
                else f"has not succeeded since it first ran {_span(now - since)} ago")
        found.append(Alert(f"{key}/late", job, app, "late", f"{job} of {app} {what} (expected every "
                           f"{_span(every)})", since))
    if ended is not None:
        for alarm in ended.detail.get("alarms", []):
            found.append(Alert(f"{key}/dr/{alarm.get('env')}/{alarm.get('kind')}", job, app, "dr",
                               str(alarm.get("message")), ended.started_at))
    return found


def registered(store: Store) -> list[tuple[str, datetime]]:
    """The apps registered with the server and since when."""
    with store.session() as session:
        return [(row.name, row.added_at) for row in
                session.scalars(select(ServerAppRow).order_by(ServerAppRow.name))]


def overview(store: Store, environ: Mapping[str, str] | None = None, now: datetime | None = None,
             kinds: tuple[JobKind, ...] = KINDS) -> list[JobState]:
    """Every job of every registered app: its last run, last success, next run and alerts.
    Reads the store only (a few queries), so a dashboard may call it on every page."""
    env = os.environ if environ is None else environ
    moment = now or utc_now()
    every = intervals(env, kinds)
    known = runs.summaries(store)
    states = []
    for app, added in registered(store):
        for kind in kinds:
            summary = known.get((kind.name, app))
            latest = summary.latest if summary else None
            next_run = None if every[kind.name] is None else (latest.next_run_at if latest else moment)
            states.append(JobState(kind.name, app, every[kind.name], latest,
                                   summary.last_success if summary else None, next_run,
                                   tuple(judge(kind.name, app, every[kind.name], summary, added, moment))))
    return states


_STORES: dict[tuple[str, str], Store] = {}
_STORES_GUARD = threading.Lock()


def server_store(environ: Mapping[str, str]) -> Store:
    """The server's store for `environ`, opened once a process: the routes that read the
    scheduler's state (/metrics, the API, the dashboard) share it."""
    from envplane.server import home

    key = (environ.get("ENVPLANE_STATE_URL", ""), str(home.server_home(environ)))
    with _STORES_GUARD:
        if key not in _STORES:
            _STORES[key] = home.open_server_store(environ)
        return _STORES[key]


def enabled(environ: Mapping[str, str]) -> bool:
    return environ.get(ENABLED, "").strip().lower() not in ("off", "0", "false", "no")


def alerts(store: Store, environ: Mapping[str, str] | None = None, now: datetime | None = None,
           kinds: tuple[JobKind, ...] = KINDS) -> list[Alert]:
    """Every alert that stands now (the dashboard's banner, /metrics, the webhook). A server
    started without its scheduler (ENVPLANE_SCHEDULER=off) gets no alert of its own for that:
    its jobs are `never` or `late` once two intervals have passed, like any that did not run."""
    return [a for state in overview(store, environ, now, kinds) for a in state.alerts]


def store_of(ctx: Any) -> Store:
    """The server's store of an API context (server/api.py), else the one its environment names."""
    found: Store | None = getattr(ctx, "store", None)
    return found if found is not None else server_store(ctx.environ)


def serve(store: Store, environ: Mapping[str, str]) -> Scheduler | None:
    """The scheduler `envplane serve` runs, started; None when ENVPLANE_SCHEDULER=off."""
    return Scheduler(store, environ).start() if enabled(environ) else None


# --- running the jobs ---


class Scheduler:
    """Runs every due job of every registered app, each in a thread of its own.

    `start()` looks at once and then every `tick` seconds; `stop()` stops looking and waits
    for the runs under way. `run_due()` is one look (the tests call it directly)."""

    def __init__(self, store: Store, environ: Mapping[str, str] | None = None, *, clock: Clock = utc_now,
                 tick: float = TICK, kinds: tuple[JobKind, ...] = KINDS,
                 load: Callable[[Store, str, Mapping[str, str]], Project] | None = None) -> None:
        self.store = store
        self.environ = dict(os.environ if environ is None else environ)
        self.clock = clock
        self.tick = tick
        self.kinds = kinds
        self.every = intervals(self.environ, kinds)  # a bad value stops the server's start
        self.load = load or _load_app
        self.webhook = self.environ.get(ALERT_WEBHOOK, "").strip() or None
        self.me = f"{socket.gethostname()} pid {os.getpid()}"
        self._stop = threading.Event()
        self._loop: threading.Thread | None = None
        self._guard = threading.Lock()
        self._running: dict[tuple[str, str], threading.Thread] = {}
        self._notified: dict[str, Alert] = {}

    def start(self) -> Scheduler:
        if self._loop is None:
            self._stop.clear()
            self._loop = threading.Thread(target=self._forever, name="envplane-scheduler", daemon=True)
            self._loop.start()
        return self

    def stop(self, timeout: float = STOP_TIMEOUT) -> None:
        self._stop.set()
        if self._loop is not None and self._loop is not threading.current_thread():
            self._loop.join(timeout)
        self._loop = None
        for thread in self.running():
            thread.join(timeout)

    def running(self) -> list[threading.Thread]:
        with self._guard:
            return [t for t in self._running.values() if t.is_alive()]

    def _forever(self) -> None:
        while not self._stop.is_set():
            try:
                self.run_due()
                self.notify()
            except Exception:  # the store out of reach a moment: look again next tick
                log.exception("the scheduler could not look at its jobs")
            self._stop.wait(self.tick)

    def run_due(self) -> list[threading.Thread]:
        """Start a thread for each job that is due and not running here already."""
        now = self.clock()
        known = runs.summaries(self.store)
        started = []
        for app, _ in registered(self.store):
            for kind in self.kinds:
                every = self.every[kind.name]
                summary = known.get((kind.name, app))
                if every is None or not _due(summary.latest if summary else None, every, now):
                    continue
                with self._guard:
                    current = self._running.get((kind.name, app))
                    if current is not None and current.is_alive():
                        continue
                    thread = threading.Thread(target=self.run, args=(kind, app), daemon=True,
                                              name=f"envplane-scheduler-{kind.name}-{app}")
                    self._running[(kind.name, app)] = thread
                thread.start()
                started.append(thread)
        return started

    def run(self, kind: JobKind, app: str) -> runs.Run | None:
        """One run of a job, if it is still due under its lock; None when another server
        holds the job or ran it meanwhile. Never raises: a failure is the run's outcome."""
        every = self.every[kind.name]
        if every is None:
            return None
        try:
            lock = locks.acquire(self.store, app, LOCK_ENV, kind.name, holder=f"{ACTOR} {kind.name}",
                                 wait=False, ttl=LOCK_TTL, clock=self.clock)
        except LockError:
            return None  # another server runs it now
        except Exception:
            log.exception("%s of %s: could not take its lock", kind.name, app)
            return None
        try:
            with lock, locks.heartbeat(lock, LOCK_TTL, clock=self.clock):
                return self._run_locked(kind, app, every)
        except Exception:
            log.exception("%s of %s: the run could not be recorded", kind.name, app)
            return None

    def _run_locked(self, kind: JobKind, app: str, every: timedelta) -> runs.Run | None:
        started = self.clock()
        if not _due(runs.latest(self.store, kind.name, app), every, started):
            return None  # another server ran it while we waited for the lock
        runs.interrupt_stale(self.store, kind.name, app, started)
        run_id = runs.start(self.store, kind.name, app, started, started + every, self.me)
        try:
            done = kind.work(Work(self.load(self.store, app, self.environ), self.environ, self.clock))
        except EnvplaneError as exc:
            done = Done(False, exc.message + (f" (hint: {exc.hint})" if exc.hint else ""))
        except Exception as exc:  # one job's bug never stops the others
            log.exception("%s of %s failed", kind.name, app)
            done = Done(False, f"internal error: {type(exc).__name__}: {mask_known(str(exc))}")
        outcome = "ok" if done.ok else "failed"
        runs.finish(self.store, run_id, outcome, done.message, self.clock(), done.detail)
        (log.info if done.ok else log.warning)("%s of %s: %s", kind.name, app, mask_known(done.message))
        return runs.latest(self.store, kind.name, app)

    def notify(self) -> None:
        """POST each alert to the webhook when it starts and when it ends; one that could
        not be sent is tried again at the next look."""
        standing = {a.id: a for a in alerts(self.store, self.environ, self.clock(), self.kinds)}
        if self.webhook is None:
            self._notified = standing
            return
        for alert_id, alert in standing.items():
            if alert_id not in self._notified and self._post("firing", alert):
                self._notified[alert_id] = alert
        for alert_id, alert in list(self._notified.items()):
            if alert_id not in standing and self._post("resolved", alert):
                del self._notified[alert_id]

    def _post(self, status: str, alert: Alert) -> bool:
        assert self.webhook is not None
        word = "ALERT" if status == "firing" else "resolved"
        body = json.dumps({"status": status, "text": f"envplane {word}: {alert.message}",
                           "alert": alert.as_dict()}).encode()
        request = urllib.request.Request(self.webhook, data=body, method="POST",
                                         headers={"Content-Type": "application/json"})
        try:
            with _OPENER.open(request, timeout=WEBHOOK_TIMEOUT) as answer:
                answer.read()
            return True
        except (urllib.error.URLError, OSError, EnvplaneError) as error:
            # never the URL itself: a chat webhook's URL is its credential
            log.warning("the alert webhook (%s) did not take alert %s: %s", ALERT_WEBHOOK, alert.id,
                        getattr(error, "reason", error))
            return False


class _NoRedirects(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, req: urllib.request.Request, fp: Any, code: int, msg: str,
                         headers: Any, newurl: str) -> None:
        raise urllib.error.URLError(f"it redirects (HTTP {code}); not followed")


_OPENER = urllib.request.build_opener(_NoRedirects)


def _due(latest: runs.Run | None, every: timedelta, now: datetime) -> bool:
    """Never ran, or its next run is here (a shorter interval set since counts at once)."""
    if latest is None:
        return True
    if latest.outcome == runs.RUNNING and latest.started_at + timedelta(seconds=LOCK_TTL) > now:
        return False  # running on some server (its lock decides whether it still does)
    return now >= min(latest.next_run_at, latest.started_at + every)


def _load_app(store: Store, name: str, environ: Mapping[str, str]) -> Project:
    from envplane.server import apps

    return apps.load(store, name, environ)


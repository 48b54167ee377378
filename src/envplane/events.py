"""What a long operation tells whoever watches it: plain, JSON-able events.

The operations of `service/` take one `report` callback and call it with these; they never
print. The CLI draws them as lines (live on a terminal, periodic when piped), the webhook
logs them, and an HTTP API can stream `as_dict(event)` as Server-Sent Events or keep them
as a job's log. Every field is a str, number, bool or None.

Inside, `apply` and the release code report steps through a StepHook `(step, state,
seconds)` and waits through a WaitHook `(subject, detail)`; `Progress` turns both into
events, timing the running step so a Waiting event says how long it has waited.
"""

from __future__ import annotations

import dataclasses
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:
    from envplane.plan import Step

# The states a step ends in: done, nothing to do, failed, or stopped by Ctrl-C / SIGTERM.
Finish = Literal["ok", "skip", "failed", "interrupted"]


@dataclass(frozen=True)
class StepStarted:
    step: str  # the step's kind: "start", "health", "hook:migrate"
    description: str
    resource: str = ""
    at: float = field(default_factory=time.time, compare=False)  # wall clock, Unix seconds
    type: Literal["step_started"] = "step_started"


@dataclass(frozen=True)
class StepFinished:
    step: str
    description: str
    state: str  # one of Finish
    seconds: float
    resource: str = ""
    at: float = field(default_factory=time.time, compare=False)
    type: Literal["step_finished"] = "step_finished"


@dataclass(frozen=True)
class Waiting:
    """The running step waits on something outside envplane; sent at every try (the
    receiver decides how often to show it)."""

    step: str
    description: str
    subject: str  # what is waited on: a service name, "lock"
    detail: str  # its last answer, masked: "GET /health → HTTP 404"
    seconds: float  # since the step started
    at: float = field(default_factory=time.time, compare=False)
    type: Literal["waiting"] = "waiting"


@dataclass(frozen=True)
class LogLine:
    source: str  # a service name
    line: str  # masked
    at: float = field(default_factory=time.time, compare=False)
    type: Literal["log"] = "log"


@dataclass(frozen=True)
class Note:
    """A line for people that is not a step: "waiting: alice holds this instance"."""

    message: str
    level: Literal["info", "warning"] = "info"
    at: float = field(default_factory=time.time, compare=False)
    type: Literal["note"] = "note"


Event = StepStarted | StepFinished | Waiting | LogLine | Note
Report = Callable[[Event], None]
StepHook = Callable[["Step", str, float], None]  # (step, "start" | one of Finish, seconds)
WaitHook = Callable[[str, str], None]  # (subject, detail): what the running step waits on


MARKS = {"ok": "✓", "skip": "–", "failed": "✗", "interrupted": "✗"}


def running_line(description: str, seconds: float, waiting: Waiting | None) -> str:
    """A running step in words: what it does, for how long, what it waits on."""
    line = f"{description} ({seconds:.0f} s)"
    if waiting is not None:
        line += f" — {waiting.subject}: {waiting.detail}"
    return line


def line(event: Event) -> str:
    """The event as one plain line for a log (the webhook's, a piped CLI)."""
    if isinstance(event, StepFinished):
        suffix = " interrupted" if event.state == "interrupted" else ""
        return f"{MARKS.get(event.state, '?')} {event.description} {event.seconds:.1f}s{suffix}"
    if isinstance(event, StepStarted):
        return f"… {event.description}"
    if isinstance(event, Waiting):
        return f"… {running_line(event.description, event.seconds, event)}"
    if isinstance(event, LogLine):
        return f"{event.source} | {event.line}"
    return event.message


def as_dict(event: Event) -> dict[str, Any]:
    """The event as JSON-able data (its `type` says which one)."""
    return dataclasses.asdict(event)


_TYPES: dict[str, type[Any]] = {cls.type: cls for cls in (StepStarted, StepFinished, Waiting, LogLine, Note)}


def from_dict(data: dict[str, Any]) -> Event | None:
    """An event sent as `as_dict` (an API job's stream) back as one; None for a type or a
    field this envplane does not know (a newer server's)."""
    cls = _TYPES.get(str(data.get("type")))
    if cls is None:
        return None
    names = {f.name for f in dataclasses.fields(cls)}
    try:
        event: Event = cls(**{k: v for k, v in data.items() if k in names})
    except TypeError:
        return None
    return event


def ignore(event: Event) -> None:
    """A Report for callers that watch nothing."""


def no_wait(subject: str, detail: str) -> None:
    """A WaitHook that hears nothing."""


class Progress:
    """Turns the inner hooks into events for one `report`.

    `step` is a StepHook and `waiting` a WaitHook; both may be called from other threads
    (a heartbeat, a log reader), so the running step is kept under a lock.
    """

    def __init__(self, report: Report) -> None:
        self.report = report
        self._lock = threading.Lock()
        self._running: tuple[Step, float] | None = None

    def step(self, step: Step, state: str, seconds: float) -> None:
        with self._lock:
            if state == "start":
                self._running = (step, time.monotonic())
            elif self._running is not None and self._running[0] is step:
                self._running = None
        if state == "start":
            self.report(StepStarted(step.kind, step.description, step.resource))
        else:
            self.report(StepFinished(step.kind, step.description, state, round(seconds, 3), step.resource))

    def waiting(self, subject: str, detail: str) -> None:
        with self._lock:
            running = self._running
        if running is None:
            self.report(Note(f"{subject}: {detail}"))
            return
        step, since = running
        self.report(Waiting(step.kind, step.description, subject, detail,
                            round(time.monotonic() - since, 3)))

    def note(self, message: str, level: Literal["info", "warning"] = "info") -> None:
        self.report(Note(message, level))

    def log(self, source: str, line: str) -> None:
        self.report(LogLine(source, line))

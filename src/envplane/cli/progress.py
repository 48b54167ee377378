"""How the CLI draws a service operation's events (envplane.events) for people, on stderr.

Every finished step is one line: `✓ description 1.2s` (`–` nothing to do, `✗` failed,
`✗ … interrupted`). While a step runs:
- on a terminal, a live line under them with its elapsed time and what it waits on
  ("wait until web answers /health (12 s) — web: GET /health → HTTP 404"), redrawn
  four times a second and gone when the step ends;
- piped (a CI log, a file), a plain line every `every` seconds with the same words, so a
  log shows that a long step is alive and what it waits on.
With --json nothing is drawn: stdout carries the result and stderr stays quiet.
"""

from __future__ import annotations

import signal
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from types import FrameType
from typing import TYPE_CHECKING

from rich.console import Console
from rich.live import Live
from rich.markup import escape
from rich.text import Text

from envplane.cli.output import err
from envplane.events import (
    Event,
    LogLine,
    Note,
    Progress,
    Report,
    StepFinished,
    StepHook,
    StepStarted,
    Waiting,
    running_line,
)
from envplane.secret import mask_known

if TYPE_CHECKING:
    from envplane import lifecycle
    from envplane.spec.load import Project

MARKS = {"ok": "[green]✓[/]", "skip": "[dim]–[/]", "failed": "[red]✗[/]", "interrupted": "[red]✗[/]"}
EVERY = 10.0  # seconds between plain progress lines when piped


class Drawer:
    """A Report that draws events on `console`; `close()` ends any live line."""

    def __init__(self, console: Console, live: bool | None = None, every: float = EVERY,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.console = console
        self.live = console.is_terminal if live is None else live
        self.every = every
        self.clock = clock
        self._lock = threading.RLock()
        # (step, monotonic start, last Waiting): replaced whole, so the live line's refresh
        # thread reads it without the lock (it must never wait for us while we stop it).
        self._state: tuple[StepStarted, float, Waiting | None] | None = None
        self._live: Live | None = None
        self._ticker: threading.Thread | None = None
        self._stop = threading.Event()

    def __call__(self, event: Event) -> None:
        with self._lock:
            if isinstance(event, StepStarted):
                self._start(event)
            elif isinstance(event, Waiting):
                if self._state is not None:
                    self._state = (self._state[0], self._state[1], event)
            elif isinstance(event, StepFinished):
                self._finish(event)
            elif isinstance(event, Note):
                text = escape(mask_known(event.message))
                self.console.print(f"[yellow]{text}[/]" if event.level == "warning" else text)
            elif isinstance(event, LogLine):
                self.console.print(f"{escape(event.source)} | {escape(mask_known(event.line))}")

    def close(self) -> None:
        with self._lock:
            self._end_running()

    def _start(self, event: StepStarted) -> None:
        self._end_running()
        self._state = (event, self.clock(), None)
        if self.live:
            self._live = Live(_Running(self), console=self.console, refresh_per_second=4, transient=True)
            self._live.start()
        else:
            self._stop = threading.Event()
            self._ticker = threading.Thread(target=self._tick, args=(event, self._stop), daemon=True,
                                            name="envplane-progress")
            self._ticker.start()

    def _finish(self, event: StepFinished) -> None:
        self._end_running()
        suffix = " [red]interrupted[/]" if event.state == "interrupted" else ""
        self.console.print(f"{MARKS.get(event.state, '?')} {escape(event.description)} "
                           f"[dim]{event.seconds:.1f}s[/]{suffix}")

    def _end_running(self) -> None:
        self._state = None
        if self._live is not None:
            self._live.stop()
            self._live = None
        self._stop.set()
        self._ticker = None

    def current(self) -> str:
        """The live line's words (empty between steps)."""
        state = self._state
        if state is None:
            return ""
        step, since, waiting = state
        return running_line(step.description, self.clock() - since, waiting)

    def _tick(self, step: StepStarted, stop: threading.Event) -> None:
        """Piped: every `every` seconds while `step` runs, its words as a plain line."""
        while not stop.wait(self.every):
            with self._lock:
                state = self._state
                if state is None or state[0] is not step:
                    return
                self.console.print(f"  … {escape(mask_known(self.current()))}", highlight=False)


class _Running:
    """The live line's renderable: recomputed at every refresh, so its seconds count up."""

    def __init__(self, drawer: Drawer) -> None:
        self.drawer = drawer

    def __rich__(self) -> Text:
        words = self.drawer.current()
        return Text(f"⠿ {mask_known(words)}" if words else "", style="cyan")


def step_printer(as_json: bool) -> StepHook:
    """Finished steps as lines (for commands that report only steps, e.g. the DR ones)."""
    drawer = Progress(silent if as_json else FinishedOnly(err))
    return drawer.step


def session_for(project: Project, no_wait: bool) -> lifecycle.Session:
    """A session whose lock waits are drawn on stderr."""
    from envplane.service.session import open_session

    return open_session(project, FinishedOnly(err), wait=not no_wait)


class FinishedOnly:
    """Draws finished steps and notes, no running line."""

    def __init__(self, console: Console) -> None:
        self.drawer = Drawer(console, live=False, every=float("inf"))

    def __call__(self, event: Event) -> None:
        if not isinstance(event, StepStarted | Waiting):
            self.drawer(event)


def finished_only(as_json: bool) -> Report:
    """Finished steps and notes on stderr, no running line; with --json only the warnings
    (a lock wait, a backup's), stdout carrying the result."""
    drawn = FinishedOnly(err)

    def report(event: Event) -> None:
        if not as_json or (isinstance(event, Note) and event.level == "warning"):
            drawn(event)

    return report


def silent(event: Event) -> None:
    """--json: draw nothing."""


@contextmanager
def drawing(console: Console, as_json: bool = False) -> Iterator[Report]:
    """A Report that draws on `console` while the block runs (nothing with --json); Ctrl-C
    meanwhile says at once that the operation stops (see `stopping`)."""
    with stopping(console, as_json):
        if as_json:
            yield silent
            return
        drawer = Drawer(console)
        try:
            yield drawer
        finally:
            drawer.close()


@contextmanager
def stopping(console: Console, as_json: bool) -> Iterator[None]:
    """Ctrl-C stops the operation as by default (a KeyboardInterrupt: the step, deployment
    and audit row say interrupted), and first says so: a docker command under way is let
    finish (run.py), which can take a moment; a second Ctrl-C stops it too."""
    if threading.current_thread() is not threading.main_thread():
        yield  # only the main thread gets signals (and may set their handlers)
        return
    pressed = [0]

    def handler(signum: int, frame: FrameType | None) -> None:
        pressed[0] += 1
        if pressed[0] == 1 and not as_json:
            console.file.write("\nstopping… (a docker command under way is let finish; Ctrl-C again "
                               "stops it)\n")
            console.file.flush()
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGINT, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)

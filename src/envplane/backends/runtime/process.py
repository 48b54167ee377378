"""The process runtime (env `local`): each service's dev command as a supervised process.

No Docker and no database server (seed 000 §3.1). Output is prefixed with the service
name; a service that crashes is restarted with backoff; stop() ends every process
group (SIGTERM, then SIGKILL after a grace period).
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from envplane.target import Target

COLOURS = ("cyan", "magenta", "green", "yellow", "blue", "red")
MAX_BACKOFF = 30.0
STABLE_AFTER = 10.0  # a process that ran this long has its backoff reset


@dataclass
class Supervised:
    name: str
    command: str
    cwd: Path
    env: dict[str, str]
    colour: str
    process: subprocess.Popen[str] | None = None
    started_at: float = 0.0
    restarts: int = 0
    backoff: float = 1.0
    next_start: float = 0.0
    threads: list[threading.Thread] = field(default_factory=list)


Printer = Callable[[str, str, str], None]  # (service, colour, line)


class ProcessSupervisor:
    def __init__(self, target: Target, root: Path, printer: Printer,
                 base_env: Mapping[str, str] | None = None,
                 resources: Mapping[str, Mapping[str, str]] | None = None,
                 stopping: threading.Event | None = None) -> None:
        """`resources`: per service, the variables of the resources it uses (DATABASE_URL, ...);
        `stopping`: set by whoever ends the run (no crashed process restarts after it)."""
        environ = dict(base_env if base_env is not None else os.environ)
        self.printer = printer
        self.stopping = stopping if stopping is not None else threading.Event()
        self._spawning = threading.Lock()
        self.services = [
            Supervised(
                name=s.name,
                command=str(s.dev),
                cwd=root / s.dev_cwd if s.dev_cwd else root,
                env={**environ, **s.env, **(resources or {}).get(s.name, {})},
                colour=COLOURS[i % len(COLOURS)],
            )
            for i, s in enumerate(target.services)
            if s.dev
        ]

    def start(self, poll: float = 0.2) -> None:
        """Start every service and the thread that restarts what crashes."""
        for svc in self.services:
            self._spawn(svc)
        self._monitor = threading.Thread(target=self._watch, args=(poll,), daemon=True)
        self._monitor.start()

    def _watch(self, poll: float) -> None:
        while not self.stopping.wait(poll):
            self.tick()

    def _spawn(self, svc: Supervised) -> None:
        svc.process = subprocess.Popen(
            ["sh", "-c", svc.command],
            cwd=svc.cwd,
            env=svc.env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            bufsize=1,
            start_new_session=True,  # its own process group: stop() reaches its children
        )
        svc.started_at = time.monotonic()
        assert svc.process.stdout is not None
        reader = threading.Thread(target=self._pump, args=(svc, svc.process.stdout), daemon=True)
        reader.start()
        svc.threads.append(reader)

    def _pump(self, svc: Supervised, stream: IO[str]) -> None:
        for line in stream:
            self.printer(svc.name, svc.colour, line.rstrip("\n"))

    def tick(self) -> None:
        """Restart what crashed, with exponential backoff. Call this in a loop."""
        now = time.monotonic()
        for svc in self.services:
            proc = svc.process
            if proc is None or proc.poll() is None or self.stopping.is_set():
                if proc is None and now >= svc.next_start:
                    with self._spawning:
                        if not self.stopping.is_set():
                            self._spawn(svc)
                continue
            ran = now - svc.started_at
            svc.backoff = 1.0 if ran >= STABLE_AFTER else min(svc.backoff * 2, MAX_BACKOFF)
            svc.restarts += 1
            svc.next_start = now + svc.backoff
            self.printer(svc.name, svc.colour,
                         f"exited with code {proc.returncode}; restarting in {svc.backoff:.0f} s")
            svc.process = None

    def run_until_stopped(self) -> None:
        self.stopping.wait()

    def stop(self, grace: float = 5.0) -> None:
        """Stop every service and what it started: returns when their process groups are gone
        (the shell `sh -c` exits before the server it started has closed its sockets)."""
        with self._spawning:  # a restart in flight either lands in `live` or never starts
            self.stopping.set()
        live = [s.process for s in self.services if s.process and s.process.poll() is None]
        for proc in live:
            _signal_group(proc, signal.SIGTERM)
        deadline = time.monotonic() + grace
        for proc in live:
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=max(0.0, deadline - time.monotonic()))
        for proc in live:
            # Seen gone once, a group id is never signalled again: it may name another group by then.
            while (alive := _group_alive(proc)) and time.monotonic() < deadline:
                time.sleep(0.02)
            if alive:
                _signal_group(proc, signal.SIGKILL)
            proc.wait()


def _signal_group(proc: subprocess.Popen[str], sig: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, sig)


def _group_alive(proc: subprocess.Popen[str]) -> bool:
    try:
        os.killpg(proc.pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True

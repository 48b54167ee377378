"""The one place envplane runs a process.

Every command is logged with secret values masked, and a failure becomes a typed
BackendError carrying the command, the exit code and the (masked) end of stderr. Masking
covers the secrets passed in and every secret this command knows (secret.mask_known), so a
hook that prints its DATABASE_URL or a user secret shows `***` in the error, and so in the
audit log that records it.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shlex
import signal
import subprocess
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from envplane.errors import BackendError
from envplane.secret import Secret, mask_known

log = logging.getLogger("envplane.run")


@dataclass(frozen=True)
class Result:
    args: tuple[str, ...]
    returncode: int
    stdout: str
    stderr: str


def run(
    args: Sequence[str],
    *,
    secrets: Iterable[Secret] = (),
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
    input: str | None = None,
    timeout: float | None = None,
    check: bool = True,
    what: str = "",
) -> Result:
    """Run args; raise BackendError (masked) when it fails and `check` is set."""
    hidden = list(secrets)
    shown = mask_known(shlex.join(args), hidden)
    log.debug("run: %s", shown)
    try:
        # Its own process group: the SIGINT a terminal sends its foreground job on Ctrl-C
        # reaches envplane only, which lets the command finish (see _finish) instead of a
        # Compose stopped half-way through replacing a container.
        proc = subprocess.Popen(
            list(args),
            stdin=subprocess.PIPE if input is not None else subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=dict(env) if env is not None else None,
            cwd=cwd,
            process_group=0,
        )
    except FileNotFoundError:
        raise BackendError(
            f"{what or 'command'} failed: {args[0]} is not installed", f"install {args[0]}"
        ) from None
    try:
        stdout, stderr = _finish(proc, input, timeout)
    except subprocess.TimeoutExpired:
        _signal_group(proc, signal.SIGKILL)
        proc.communicate()
        raise BackendError(f"{what or shown} did not finish within {timeout:.0f} s") from None
    result = Result(tuple(args), proc.returncode, stdout, stderr)
    if check and proc.returncode != 0:
        # Masked before it is cut, so the cut can never leave part of a value behind.
        tail = mask_known(stderr.strip() or stdout.strip(), hidden)[-2000:]
        raise BackendError(mask_known(f"{what or shown} failed (exit {proc.returncode}): {tail}", hidden))
    return result


def _finish(proc: subprocess.Popen[str], input: str | None, timeout: float | None) -> tuple[str, str]:
    """The command's output once it ended. On Ctrl-C it is let finish (it did not get the
    signal) and the KeyboardInterrupt goes on after it; a second Ctrl-C passes the SIGINT on
    to its process group, as the terminal would have (SIGKILL after 10 s)."""
    try:
        return proc.communicate(input, timeout=timeout)
    except KeyboardInterrupt:
        try:
            proc.communicate(timeout=timeout)
        except KeyboardInterrupt:
            _signal_group(proc, signal.SIGINT)
            try:
                proc.communicate(timeout=10)
            except subprocess.TimeoutExpired:
                _signal_group(proc, signal.SIGKILL)
                proc.communicate()
        except subprocess.TimeoutExpired:
            _signal_group(proc, signal.SIGKILL)
            proc.communicate()
        raise


def _signal_group(proc: subprocess.Popen[str], sig: int) -> None:
    """The command and what it started (docker runs its Compose plugin as a child)."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, sig)


def stream(args: Sequence[str], *, what: str = "", env: Mapping[str, str] | None = None) -> int:
    """Run args with the terminal as its output (logs -f); return its exit code."""
    log.debug("stream: %s", shlex.join(args))
    try:
        return subprocess.call(list(args), env=dict(env) if env is not None else None)
    except FileNotFoundError:
        raise BackendError(f"{what or 'command'} failed: {args[0]} is not installed") from None


@dataclass(frozen=True)
class Stage:
    """One process of a Pipeline; `env` is added to envplane's own environment (PGPASSWORD
    for pg_dump: a password never goes into argv, which `ps` shows)."""

    args: tuple[str, ...]
    env: Mapping[str, str] | None = None


class Pipeline:
    """Processes joined stdout to stdin, like `a | b | c` under `set -o pipefail`.

    `feed=True` gives a writable `stdin` (the first stage's), `drain=True` a readable
    `stdout` (the last stage's). `finish()` waits for every stage and raises a masked
    BackendError naming the first stage that failed, so a pg_dump killed half-way fails the
    pipeline even though zstd and age after it ended cleanly. Leaving the `with` block on an
    exception kills every stage. Each stage's stderr goes to an anonymous temporary file
    (never the data, which only flows through pipes).
    """

    def __init__(self, stages: Sequence[Stage | Sequence[str]], *, feed: bool = False,
                 drain: bool = True, secrets: Iterable[Secret] = (), what: str = "") -> None:
        self.stages = [s if isinstance(s, Stage) else Stage(tuple(s)) for s in stages]
        self.feed, self.drain, self.what = feed, drain, what
        self._secrets = list(secrets)
        self._procs: list[subprocess.Popen[bytes]] = []
        self._errs: list[IO[bytes]] = []
        self.stdin: IO[bytes] | None = None
        self.stdout: IO[bytes] | None = None

    def __enter__(self) -> Pipeline:
        import os
        import tempfile

        previous: IO[bytes] | None = None
        try:
            for index, stage in enumerate(self.stages):
                log.debug("pipe: %s", mask_known(shlex.join(stage.args), self._secrets))
                last = index == len(self.stages) - 1
                err = tempfile.TemporaryFile()
                self._errs.append(err)
                stdin: Any = previous if previous is not None else (
                    subprocess.PIPE if self.feed else subprocess.DEVNULL)
                stdout: Any = subprocess.PIPE if (not last or self.drain) else subprocess.DEVNULL
                proc = subprocess.Popen(list(stage.args), stdin=stdin, stdout=stdout, stderr=err,
                                        env={**os.environ, **stage.env} if stage.env else None)
                if previous is not None:
                    previous.close()  # the child holds it now; our copy would keep the pipe open
                self._procs.append(proc)
                previous = proc.stdout if not last else None
        except FileNotFoundError as exc:
            self.kill()
            raise BackendError(f"{self.what or 'pipeline'} failed: {exc.filename} is not installed",
                               f"install {exc.filename}") from None
        self.stdin = self._procs[0].stdin
        self.stdout = self._procs[-1].stdout if self.drain else None
        return self

    def finish(self, timeout: float | None = None) -> None:
        """Close the input, wait for every stage; BackendError when any failed."""
        if self.stdin is not None and not self.stdin.closed:
            self.stdin.close()
        codes = [proc.wait(timeout=timeout) for proc in self._procs]
        failed = [i for i, code in enumerate(codes) if code != 0]
        if not failed:
            return
        # A stage killed by SIGPIPE only saw a later stage go: name the stage that went first.
        own = [i for i in failed if codes[i] != -13] or failed
        index = own[0]
        self._errs[index].seek(0)
        tail = self._errs[index].read().decode("utf-8", "replace").strip()
        tail = mask_known(tail, self._secrets)[-1500:]
        name = self.stages[index].args[0]
        code = codes[index]
        how = f"killed by signal {-code}" if code < 0 else f"exit {code}"
        raise BackendError(mask_known(f"{self.what or 'pipeline'}: {name} failed ({how}): {tail}",
                                      self._secrets))

    def kill(self) -> None:
        for proc in self._procs:
            if proc.poll() is None:
                proc.kill()
        for proc in self._procs:
            proc.wait()

    def __exit__(self, kind: object, value: object, trace: object) -> None:
        if kind is not None:
            self.kill()
        for stream_ in (self.stdin, self.stdout):
            if stream_ is not None and not stream_.closed:
                stream_.close()
        for err in self._errs:
            err.close()

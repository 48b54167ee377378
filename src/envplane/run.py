"""The one place envplane runs a process.

Every command is logged with secret values masked, and a failure becomes a typed
BackendError carrying the command, the exit code and the (masked) end of stderr.
"""

from __future__ import annotations

import logging
import shlex
import subprocess
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from envplane.errors import BackendError
from envplane.secret import Secret, mask

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
    shown = mask(shlex.join(args), hidden)
    log.debug("run: %s", shown)
    try:
        done = subprocess.run(
            list(args),
            capture_output=True,
            text=True,
            env=dict(env) if env is not None else None,
            cwd=cwd,
            input=input,
            timeout=timeout,
            check=False,
        )
    except FileNotFoundError:
        raise BackendError(
            f"{what or 'command'} failed: {args[0]} is not installed", f"install {args[0]}"
        ) from None
    except subprocess.TimeoutExpired:
        raise BackendError(f"{what or shown} did not finish within {timeout:.0f} s") from None
    result = Result(tuple(args), done.returncode, done.stdout, done.stderr)
    if check and done.returncode != 0:
        tail = mask(done.stderr.strip() or done.stdout.strip(), hidden)[-2000:]
        raise BackendError(
            f"{what or shown} failed (exit {done.returncode}): {tail}",
        )
    return result


def stream(args: Sequence[str], *, what: str = "") -> int:
    """Run args with the terminal as its output (logs -f); return its exit code."""
    log.debug("stream: %s", shlex.join(args))
    try:
        return subprocess.call(list(args))
    except FileNotFoundError:
        raise BackendError(f"{what or 'command'} failed: {args[0]} is not installed") from None

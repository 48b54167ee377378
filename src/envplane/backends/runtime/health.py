"""Waiting for services to be healthy: a Compose healthcheck, then the public port.

What to check is decided purely (`checks_for`). The wait (`wait_healthy`) takes its clock,
sleep, probe and log reader as arguments so tests can drive it. It says what it waits on
at every try (`on_progress`), and it fails as soon as the answer cannot change — a
container that exited or restarts in a loop, a health path that answers 404 on every try
for `settle` seconds, a public port that closes every connection while the container's
own healthcheck passes — instead of always waiting the whole timeout.
"""

from __future__ import annotations

import functools
import http.client
import socket
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from envplane.backends.runtime.facts import ContainerFact, listening
from envplane.checks import CONTAINER, HealthCheck, checks_for
from envplane.errors import BackendError
from envplane.secret import mask_known

__all__ = ["HealthCheck", "check_once", "checks_for", "probe", "proc_listening", "wait_healthy"]

SETTLE_SECONDS = 20.0  # how long one answer that cannot change must repeat before failing
# Statuses that say the path is wrong, not that the app is still starting.
_FINAL_STATUSES = frozenset(range(400, 500)) - {408, 425, 429}
CLOSED = "closed at once"  # a connection accepted and dropped: docker-proxy, nothing behind it


def probe(url: str, timeout: float = 2.0) -> tuple[bool, str]:
    """Ask once: an HTTP GET (2xx/3xx is healthy), or a TCP connection that stays open."""
    if url.startswith("tcp://"):
        parts = urlsplit(url)
        return probe_tcp(parts.hostname or "127.0.0.1", parts.port or 0, timeout)
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return 200 <= response.status < 400, f"HTTP {response.status}"
    except urllib.error.HTTPError as exc:
        return False, f"HTTP {exc.code}"
    except (http.client.RemoteDisconnected, ConnectionResetError):
        return False, CLOSED
    except (urllib.error.URLError, OSError, TimeoutError) as exc:
        reason = getattr(exc, "reason", exc)
        if isinstance(reason, ConnectionRefusedError):
            return False, "connection refused"
        return False, str(reason)


def probe_tcp(host: str, port: int, timeout: float = 2.0, listen: float = 0.3) -> tuple[bool, str]:
    """A connection that is accepted and not closed within `listen` seconds counts: a
    server waits for its client to speak (or greets it). Docker's userland proxy accepts
    every connection to a published port and closes it at once when nothing listens."""
    try:
        with socket.create_connection((host, port), timeout=timeout) as conn:
            conn.settimeout(listen)
            try:
                first = conn.recv(1)
            except TimeoutError:
                return True, "accepts connections"
            except ConnectionResetError:
                return False, CLOSED
            return (True, "accepts connections") if first else (False, CLOSED)
    except ConnectionRefusedError:
        return False, "connection refused"
    except OSError as exc:
        return False, str(exc)


@dataclass
class _Watch:
    """What one check has seen so far: for progress lines and the fail-fast rules."""

    check: HealthCheck
    state: str = "no answer"
    same_since: float | None = None  # when the current final-looking answer began
    same: str = ""
    restarts: int | None = None  # RestartCount when the wait began
    seen: list[str] = field(default_factory=list)


def wait_healthy(
    checks: Sequence[HealthCheck],
    containers: Callable[[], list[ContainerFact]],
    timeout: float,
    on_progress: Callable[[str, str], None] = lambda service, state: None,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
    probe: Callable[[str], tuple[bool, str]] = probe,
    tail: Callable[[ContainerFact], str] = lambda fact: "",
    settle: float = SETTLE_SECONDS,
    listens: Callable[[ContainerFact], set[int] | None] = lambda fact: None,
) -> None:
    """Return when every check passes; raise BackendError naming the ones that did not.

    `on_progress(service, state)` hears each try ("GET /health → HTTP 404"); `tail(fact)`
    gives a stopped container's last log lines for the error (masked here); `listens(fact)`
    the TCP ports its container listens on, when they can be seen (`proc_listening` on a
    local engine), so a public port it does not listen on fails without the whole wait.
    """
    started = clock()
    deadline = started + timeout
    pending = {c.service: _Watch(c) for c in checks}
    pause = 0.1  # poll fast while a service is likely about to answer, then back off
    while pending:
        facts = {c.service: c for c in containers()}
        now = clock()
        for name, watch in list(pending.items()):
            fact = facts.get(name)
            _fail_if_stopped(watch, fact, tail)
            ok, watch.state = check_once(watch.check, fact, probe)
            on_progress(name, watch.state)
            if ok:
                del pending[name]
                continue
            _fail_if_settled(watch, _final(watch, fact, listens), now, settle,
                             functools.partial(_last_lines, fact, tail))
        if not pending:
            return
        if clock() >= deadline:
            detail = ", ".join(f"{n} ({mask_known(w.state)})" for n, w in sorted(pending.items()))
            lines = "".join(_last_lines(facts[n], tail, f"\n{n}'s last lines:") for n in sorted(pending)
                            if n in facts)
            raise BackendError(f"not healthy after {timeout:.0f} s: {detail}{lines}",
                               _see_why(pending.values()))
        sleep(pause)
        pause = min(pause * 1.5, 1.0)


def check_once(check: HealthCheck, fact: ContainerFact | None,
         probe: Callable[[str], tuple[bool, str]]) -> tuple[bool, str]:
    """One try: (healthy, what was seen)."""
    url = check.url
    if url is not None and CONTAINER in url:  # the container's own address
        if fact is None or not fact.ips:
            return False, "no container address yet"
        url = url.replace(CONTAINER, fact.ips[0], 1)
    if check.kind != "healthcheck" and url is not None and not check.healthcheck:
        ok, said = probe(url)
        state = f"{check.describe()} → {said}"
        # An image's own HEALTHCHECK counts too: answering is not enough while it says starting.
        if ok and fact is not None and fact.health not in (None, "healthy"):
            return False, f"{state}, healthcheck: {fact.health}"
        return ok, state
    if fact is None:
        return False, "no container yet"
    if fact.state != "running":
        return False, fact.state
    if fact.health != "healthy":
        said = fact.health_output.splitlines()[-1] if fact.health_output else ""
        why = f" — {mask_known(said)}" if said and fact.health == "unhealthy" else ""
        return False, f"healthcheck: {fact.health or 'none reported'}{why}"
    if url is None:
        return True, "healthcheck: healthy"
    ok, said = probe(url)
    return ok, f"{check.describe()} → {said}"


def _fail_if_stopped(watch: _Watch, fact: ContainerFact | None, tail: Callable[[ContainerFact], str]) -> None:
    """A container that exited, or that its restart policy restarts again and again, will
    not become healthy by waiting."""
    if fact is None:
        return
    name = watch.check.service
    if watch.restarts is None:
        watch.restarts = fact.restarts
    if fact.state in ("exited", "dead"):
        code = "" if fact.exit_code is None else f" with code {fact.exit_code}"
        raise BackendError(f"{name} exited{code} before it was healthy{_last_lines(fact, tail)}",
                           _see_why([watch]))
    again = fact.restarts - watch.restarts
    if again >= 2:
        code = "" if fact.exit_code is None else f", last exit code {fact.exit_code}"
        raise BackendError(f"{name} is restarting in a loop ({again} restarts while waiting{code})"
                           f"{_last_lines(fact, tail)}", _see_why([watch]))


def _fail_if_settled(watch: _Watch, final: str | None, now: float, settle: float,
                     last_lines: Callable[[], str]) -> None:
    """The same final-looking answer on every try for `settle` seconds fails the wait; the
    error ends with the container's last log lines (`last_lines`)."""
    if final is None or final != watch.same:
        watch.same, watch.same_since = final or "", now if final else None
        return
    if watch.same_since is None or now - watch.same_since < settle:
        return
    check = watch.check
    name = check.service
    if final.startswith("listens on "):
        ports = final.removeprefix("listens on ")
        raise BackendError(
            f"{name} listens on {'ports' if ',' in ports else 'port'} {ports}, not on its public port "
            f"{check.port}{last_lines()}",
            f"set services.{name}.public.port to {ports.split(',')[0]} in envplane.yaml (or make {name} "
            f"listen on {check.port}); {_see_why([watch])}")
    if final == CLOSED:
        host = urlsplit(check.url or "").port
        raise BackendError(
            f"{name} is healthy but its public port {check.port} (host port {host}) closes every "
            f"connection: nothing listens on container port {check.port}{last_lines()}",
            f"set services.{name}.public.port in envplane.yaml to the port {name} listens on; "
            f"{_see_why([watch])}")
    path = urlsplit(check.url or "").path or "/"
    raise BackendError(f"{name} answers {check.describe()} with {final} on every try for {settle:.0f} s"
                       f"{last_lines()}",
                       f"is {path} its health path? (services.{name}.health in envplane.yaml); "
                       f"{_see_why([watch])}")


def _final(watch: _Watch, fact: ContainerFact | None,
           listens: Callable[[ContainerFact], set[int] | None]) -> str | None:
    """The answer that waiting will not change, if this try gave one: an HTTP status that
    says the path is wrong; a container that listens on other ports than its public one;
    a port closing every connection while the container's own healthcheck says ready."""
    asked, _, said = watch.state.rpartition(" → ")
    if said.startswith("HTTP ") and said[5:].isdigit() and int(said[5:]) in _FINAL_STATUSES:
        return said
    if not asked or fact is None or fact.state != "running":
        return None  # the probe was not tried: the container is not ready for it yet
    ports = listens(fact) if watch.check.port is not None else None
    if ports and watch.check.port not in ports:
        return "listens on " + ", ".join(str(p) for p in sorted(ports))
    if said == CLOSED and fact.health == "healthy":
        return said
    return None


def proc_listening(fact: ContainerFact) -> set[int] | None:
    """The TCP ports a container of a local engine listens on, from its /proc (None when
    they cannot be read: another host's engine, no permission, a stopped container)."""
    if fact.pid <= 0:
        return None
    found: set[int] = set()
    for name in ("tcp", "tcp6"):
        try:
            found |= listening(Path(f"/proc/{fact.pid}/net/{name}").read_text())
        except OSError:
            if name == "tcp":
                return None
    return found


def _last_lines(fact: ContainerFact | None, tail: Callable[[ContainerFact], str],
                head: str = "; its last lines:") -> str:
    """The container's last 10 log lines (masked) under `head`, or "" when it logged none."""
    if fact is None:
        return ""
    lines = [line for line in mask_known(tail(fact)).splitlines() if line.strip()][-10:]
    return head + "\n" + "\n".join(f"  {line}" for line in lines) if lines else ""


def _see_why(watches: Iterable[_Watch]) -> str:
    commands = [w.check.logs for w in watches if w.check.logs]
    return f"see why: {' ; '.join(commands)}" if commands else "see why in the service's logs"

"""A client of `envplane serve`'s API for CI runners (`envplane remote ...`, issue 14).

A GitHub runner holds no host key and no database password: only the server's URL
(ENVPLANE_SERVER) and a scoped token (ENVPLANE_TOKEN). It asks the server to run an
operation, which answers with a job; the client follows the job's events (Server-Sent
Events, resumed from the last event id when the connection drops) until it ends, and turns
its outcome into the CLI's exit code: the server's problem document becomes the same
message and hint the CLI would print.

Standard library only (urllib): a runner installs envplane to run this, nothing more is
imported at start.
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from envplane.errors import BackendError, EnvplaneError, NotFound, NothingToDo, UsageError
from envplane.secret import Secret

TIMEOUT = 30.0  # seconds for one request; a job's stream is read with the same idle limit
RECONNECTS = 20  # times a dropped event stream is resumed before the client gives up


class _NoRedirects(urllib.request.HTTPRedirectHandler):
    """urllib would send the token on to wherever a redirect points, another host included."""

    def redirect_request(self, req: urllib.request.Request, fp: Any, code: int, msg: str,
                         headers: Any, newurl: str) -> None:
        raise BackendError(f"{req.full_url} redirects to {newurl} (HTTP {code}): not followed, so the "
                           "token goes nowhere else", "set ENVPLANE_SERVER to the address the server "
                           "answers on itself (https://, no trailing path)")


_OPENER = urllib.request.build_opener(_NoRedirects)


@dataclass(frozen=True)
class Server:
    url: str  # without a trailing slash
    token: Secret

    @classmethod
    def from_environ(cls, environ: Mapping[str, str], url: str | None = None) -> Server:
        where = (url or environ.get("ENVPLANE_SERVER") or "").strip().rstrip("/")
        if not where:
            raise UsageError("no envplane server named", "set ENVPLANE_SERVER to its URL "
                             "(https://envplane.example.com), or pass --server")
        parsed = urllib.parse.urlsplit(where)
        if parsed.scheme not in ("http", "https") or not parsed.netloc:
            raise UsageError(f"ENVPLANE_SERVER {where!r} is not an http(s) URL",
                             "use the address `envplane serve` answers on, e.g. https://envplane.example.com")
        token = environ.get("ENVPLANE_TOKEN", "").strip()
        if not token:
            raise UsageError("ENVPLANE_TOKEN is not set", "create a token on the server (`envplane tokens "
                             "create --name ci --scope deploy:test`) and set it as the secret ENVPLANE_TOKEN")
        return cls(where, Secret(token))


def problem_error(status: int, document: Mapping[str, Any], where: str = "the server") -> EnvplaneError:
    """The server's problem+json as the error the CLI would have raised (same exit code)."""
    detail = str(document.get("detail") or document.get("title") or f"{where} answered HTTP {status}, "
                 "not with an envplane problem document")
    hint = str(document.get("hint") or "")
    if status in (400, 422):
        return UsageError(detail, hint)
    if status == 404:
        return NotFound(detail, hint)
    if status == 401:
        return BackendError(detail, hint or "the token is unknown, expired or revoked: create a new one "
                            "(`envplane tokens create`) and update the secret ENVPLANE_TOKEN")
    return BackendError(detail, hint)


def request(server: Server, method: str, path: str, body: Mapping[str, Any] | None = None) -> Any:
    """One API call; its JSON answer, or the server's problem raised as an EnvplaneError."""
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(server.url + path, data=data, method=method, headers={
        "Authorization": f"Bearer {server.token.reveal()}", "Accept": "application/json",
        **({"Content-Type": "application/json"} if data is not None else {})})
    try:
        with _OPENER.open(req, timeout=TIMEOUT) as answer:
            raw = answer.read()
    except urllib.error.HTTPError as error:
        raise problem_error(error.code, _document(error.read()), server.url) from None
    except (urllib.error.URLError, OSError) as error:
        reason = getattr(error, "reason", error)
        raise BackendError(f"cannot reach the envplane server at {server.url}: {reason}",
                           "check ENVPLANE_SERVER and that `envplane serve` runs there") from None
    try:
        return json.loads(raw) if raw else None
    except ValueError:
        raise BackendError(f"{server.url}{path} did not answer JSON",
                           "is ENVPLANE_SERVER the address of an envplane server?") from None


def _document(raw: bytes) -> dict[str, Any]:
    try:
        found = json.loads(raw)
    except ValueError:
        return {}  # a proxy's HTML page: the status says enough
    return found if isinstance(found, dict) else {"detail": str(found)}


def events(server: Server, job_id: str, after: int = 0) -> Iterator[tuple[str, dict[str, Any]]]:
    """The job's events as (type, data) from `after` on, ending with ("end", summary);
    a dropped stream is resumed from the last event it delivered."""
    reconnects = 0
    while True:
        ended = False
        try:
            for kind, data in _stream(server, job_id, after):
                if kind == "end":
                    ended = True
                    yield kind, data
                    return
                after = int(data.get("seq", after))
                reconnects = 0
                yield kind, data
        except (urllib.error.URLError, OSError, TimeoutError) as error:
            if isinstance(error, urllib.error.HTTPError):
                raise problem_error(error.code, _document(error.read()), server.url) from None
            if reconnects >= RECONNECTS:
                raise BackendError(f"lost the event stream of job {job_id} at {server.url}: "
                                   f"{getattr(error, 'reason', error)}",
                                   f"the job goes on on the server: GET {server.url}/api/v1/jobs/{job_id}"
                                   ) from None
        if not ended:
            reconnects += 1
            time.sleep(min(1.0 * reconnects, 5.0))


def _stream(server: Server, job_id: str, after: int) -> Iterator[tuple[str, dict[str, Any]]]:
    req = urllib.request.Request(f"{server.url}/api/v1/jobs/{job_id}/events", headers={
        "Authorization": f"Bearer {server.token.reveal()}", "Accept": "text/event-stream",
        **({"Last-Event-ID": str(after)} if after else {})})
    with _OPENER.open(req, timeout=TIMEOUT) as answer:
        kind, data = "message", list[str]()
        for raw in answer:
            line = raw.decode("utf-8", "replace").rstrip("\r\n")
            if not line:
                parsed = _json("\n".join(data)) if data else None
                if isinstance(parsed, dict):
                    yield kind, parsed
                kind, data = "message", []
            elif line.startswith(":"):
                continue  # a keep-alive comment
            else:
                name, _, value = line.partition(":")
                value = value.removeprefix(" ")
                if name == "event":
                    kind = value
                elif name == "data":
                    data.append(value)


def _json(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        return None  # not an event of ours: skipped


def outcome(summary: Mapping[str, Any]) -> Mapping[str, Any]:
    """The job's result when it succeeded; its problem raised as the CLI's error otherwise."""
    state = summary.get("state")
    if state == "ok":
        return summary.get("result") or {}
    problem = summary.get("problem") or {}
    if state == "nothing":  # what was asked holds already: the server says which
        said = summary.get("result") or problem
        raise NothingToDo(str(said.get("message") or said.get("detail") or "nothing to do"),
                          str(said.get("hint") or ""))
    if state == "interrupted":
        raise BackendError(f"job {summary.get('id')} was interrupted on the server",
                           "the server stopped while it ran; run the workflow again")
    raise problem_error(int(problem.get("status") or 500), problem)


def run_job(server: Server, method: str, path: str, body: Mapping[str, Any] | None,
            on_event: Callable[[str, dict[str, Any]], None]) -> Mapping[str, Any]:
    """Start a job and follow it to its end; its result, or its problem raised."""
    started = request(server, method, path, body)
    if not isinstance(started, dict) or not isinstance(started.get("id"), str):
        raise BackendError(f"the server at {server.url} did not answer with a job",
                           "is ENVPLANE_SERVER the address of an envplane server?")
    summary: Mapping[str, Any] = started
    if started.get("state") == "running":
        for kind, data in events(server, started["id"]):
            if kind == "end":
                summary = data
            else:
                on_event(kind, data)
    return outcome(summary)


# The operations CI runs, as the API names them (server/api.py owns these routes; a test
# checks each one against the server's own OpenAPI document).
Follow = Callable[[str, dict[str, Any]], None]


def _app(app: str) -> str:
    return "/api/v1/apps/" + urllib.parse.quote(app, safe="")


def preview_up(server: Server, app: str, pr: int, ref: str | None, on_event: Follow) -> Mapping[str, Any]:
    return run_job(server, "POST", f"{_app(app)}/previews", {"pr": pr, "ref": ref}, on_event)


def preview_down(server: Server, app: str, pr: int, on_event: Follow) -> Mapping[str, Any]:
    return run_job(server, "DELETE", f"{_app(app)}/previews/{pr}", None, on_event)


def release(server: Server, app: str, env: str, ref: str | None, on_event: Follow) -> Mapping[str, Any]:
    return run_job(server, "POST", f"{_app(app)}/releases", {"env": env, "ref": ref}, on_event)


def promote(server: Server, app: str, version: str, to: str, on_event: Follow) -> Mapping[str, Any]:
    return run_job(server, "POST", f"{_app(app)}/releases/{urllib.parse.quote(version, safe='')}/promote",
                   {"to": to}, on_event)

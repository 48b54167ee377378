"""The dashboard's login sessions and CSRF tokens.

A session lives in the server's memory and is named by a random id; the cookie carries that
id signed with a key the server holds (HMAC-SHA256), HttpOnly and SameSite=Strict. Logging
out forgets the session at once, and a restart of the server ends every session (the key
and the table are the process's own): nothing a browser holds outlives what the server
agreed to. The principal is the one `check_password` returned at login; a session lasts
`TTL` at most.

Every form carries a CSRF token: the session's own random token, or before a login (the
login form itself) an HMAC of a random value that a short-lived cookie holds (double
submit). A token is compared in constant time.

A client that failed `MAX_FAILURES` logins for one name within `FAILURE_WINDOW` is refused
for that name until the window has passed, whatever the password: scrypt makes each guess
slow, this bounds how many. Failures count per client and name, never per name alone, which
let anyone lock a user out by failing their password. The client is the peer's address, or
the X-Forwarded-For of a reverse proxy uvicorn trusts (FORWARDED_ALLOW_IPS, 127.0.0.1).
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from envplane.server.auth import Principal

COOKIE = "envplane_session"
LOGIN_COOKIE = "envplane_login"
TTL = 8 * 3600.0
LOGIN_TTL = 900.0  # how long a login form stays valid
MAX_FAILURES = 5
FAILURE_WINDOW = 900.0


@dataclass(frozen=True)
class WebSession:
    id: str
    principal: Principal
    csrf: str  # the token every form of this session carries
    expires: float
    stamp: str | None = None  # auth.password_stamp at login: a new password ends the session


@dataclass
class Sessions:
    """The sessions of one server process."""

    key: bytes = field(default_factory=lambda: secrets.token_bytes(32))
    ttl: float = TTL
    clock: Callable[[], float] = time.time
    _live: dict[str, WebSession] = field(default_factory=dict)
    _failures: dict[tuple[str, str], list[float]] = field(default_factory=dict)  # (client, name)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    # -- sessions -------------------------------------------------------------------------
    def start(self, principal: Principal, stamp: str | None = None) -> tuple[WebSession, str]:
        """A new session for the principal; returns it and the cookie's value."""
        session = WebSession(secrets.token_urlsafe(32), principal, secrets.token_urlsafe(32),
                             self.clock() + self.ttl, stamp)
        with self._lock:
            self._drop_expired()
            self._live[session.id] = session
        return session, self._signed(session.id)

    def find(self, cookie: str | None) -> WebSession | None:
        """The live session a cookie names; None when unsigned, forged, ended or expired."""
        sid = self._unsigned(cookie)
        if sid is None:
            return None
        with self._lock:
            session = self._live.get(sid)
            if session is not None and session.expires <= self.clock():
                del self._live[sid]
                return None
            return session

    def end(self, cookie: str | None) -> None:
        sid = self._unsigned(cookie)
        if sid is not None:
            with self._lock:
                self._live.pop(sid, None)

    def csrf_ok(self, session: WebSession, token: str | None) -> bool:
        return token is not None and hmac.compare_digest(session.csrf.encode(), token.encode())

    # -- the login form (no session yet) --------------------------------------------------
    def login_form(self) -> tuple[str, str]:
        """(cookie value, form token) for one login form."""
        nonce = f"{secrets.token_urlsafe(24)}.{int(self.clock())}"
        return nonce, self._mac("login", nonce)

    def login_token_ok(self, cookie: str | None, token: str | None) -> bool:
        if not cookie or not token or cookie.count(".") != 1:
            return False
        issued = cookie.rsplit(".", 1)[1]
        if not re.fullmatch(r"[0-9]{1,12}", issued) or self.clock() - int(issued) > LOGIN_TTL:
            return False
        return hmac.compare_digest(self._mac("login", cookie).encode(), token.encode())

    # -- failed logins ----------------------------------------------------------------------
    def refused(self, client: str, user: str) -> float:
        """Seconds until `client` may try `user` again (0: now)."""
        now = self.clock()
        with self._lock:
            recent = [t for t in self._failures.get((client, user), []) if now - t < FAILURE_WINDOW]
            if recent:
                self._failures[(client, user)] = recent
            else:
                self._failures.pop((client, user), None)
            if len(recent) < MAX_FAILURES:
                return 0.0
            return max(0.0, recent[0] + FAILURE_WINDOW - now)

    def failed(self, client: str, user: str) -> None:
        with self._lock:
            self._failures.setdefault((client, user), []).append(self.clock())
            if len(self._failures) > 10_000:  # names and addresses are the guesser's choice: bound it
                self._failures.pop(next(iter(self._failures)))

    def succeeded(self, client: str, user: str) -> None:
        with self._lock:
            self._failures.pop((client, user), None)

    # -- signing ----------------------------------------------------------------------------
    def _mac(self, purpose: str, value: str) -> str:
        return hmac.new(self.key, f"{purpose}:{value}".encode(), hashlib.sha256).hexdigest()

    def _signed(self, sid: str) -> str:
        return f"{sid}.{self._mac('session', sid)}"

    def _unsigned(self, cookie: str | None) -> str | None:
        if not cookie or cookie.count(".") != 1:
            return None
        sid, mac = cookie.split(".")
        return sid if hmac.compare_digest(self._mac("session", sid).encode(), mac.encode()) else None

    def _drop_expired(self) -> None:
        now = self.clock()
        for sid in [s for s, live in self._live.items() if live.expires <= now]:
            del self._live[sid]

"""Who may use `envplane serve`, and for what: users with passwords, API tokens with scopes.

A scope names what its holder may do:
  read              see apps, envs, plans, status, releases, audit (every scope allows this)
  read:logs         read the instances' logs (masked, but they are the app's own words)
  deploy:GLOB       change instances (up, down, previews, release, promote, rollback) of the
                    envs GLOB matches
  approve:GLOB      approve a release for the envs GLOB matches
  admin             everything, on every env
GLOB is an env name with `*` (any run of characters) and `?` (one); it matches the whole
name: `deploy:test` allows env test only, never test-prod; `deploy:test*` allows both.
`deploy:APP/GLOB` and `approve:APP/GLOB` hold for the apps APP matches only (a name or a
pattern, as GLOB); without `APP/` a scope holds for every app of the server.

Tokens are 256 random bits behind the prefix `envp_`; only their SHA-256 is stored (a fast
hash is enough for that much randomness, and it lets the lookup be an indexed equality),
they expire (90 days unless told otherwise), can be revoked, and record their last use.
Passwords are hashed with scrypt (memory-hard, in the standard library) and a salt of
their own; a login for an unknown user costs the same scrypt, so timing tells nobody who
exists. Everything that changes users or tokens is in the server's audit log.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from fnmatch import fnmatchcase
from functools import cache
from typing import Any, Literal

from sqlalchemy import delete, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from envplane.errors import NotFound, StateError, UsageError
from envplane.secret import Secret
from envplane.server import seals
from envplane.state import audit
from envplane.state.db import Store
from envplane.state.models import ServerTokenRow, ServerUserRow

ACTIONS = frozenset({"read", "read:logs", "deploy", "approve", "admin"})
ENV_ACTIONS = frozenset({"deploy", "approve"})  # actions whose scopes name envs
PLAIN_SCOPES = frozenset({"read", "read:logs", "admin"})
GLOB = re.compile(r"^[a-z0-9*?-]{1,100}$")  # env names are [a-z][a-z0-9-]*; no [classes]
# A user's name is the principal an approvers file lists for them (release/signatures.py),
# but never starting with a sign, so that it cannot pass for a command-line option.
USER_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@+-]{0,99}$")
TOKEN_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")
TOKEN_PREFIX = "envp_"
TOKEN_BYTES = 32
MAX_TOKEN = 200  # longer "tokens" are not ours: refused before any hashing or lookup
DEFAULT_EXPIRY = timedelta(days=90)
MAX_EXPIRY = timedelta(days=3650)
LAST_USE_EVERY = timedelta(minutes=1)  # last use is written at most this often per token
MIN_PASSWORD = 8
MAX_PASSWORD = 1024
# scrypt: N=2^15, r=8 → 32 MiB and ~0.1 s per hash; kept in each hash so it can be raised.
SCRYPT_LOG_N, SCRYPT_R, SCRYPT_P = 15, 8, 1
SCOPES_HINT = ("scopes: read, read:logs, deploy:[APP/]ENV, approve:[APP/]ENV, admin (APP and ENV may "
               "hold * and ?, e.g. deploy:test, approve:production, deploy:*, deploy:shop/staging)")

Kind = Literal["user", "token"]


@dataclass(frozen=True)
class Principal:
    """Who a request acts as: a logged-in user, or a token (acting for `user` when it has
    an owner). `may` is the one place that reads scopes."""

    name: str
    kind: Kind
    scopes: frozenset[str]
    user: str | None = None  # the person: the user's name, or a token's owner

    def __post_init__(self) -> None:
        if self.kind == "user" and self.user is None:
            object.__setattr__(self, "user", self.name)

    def may(self, action: str, env: str | None = None, app: str | None = None) -> bool:
        """Whether the scopes allow `action` (on `env` of `app` for deploy and approve; with
        no env, only a scope for every env — `deploy:*`, admin — allows them, and with no
        app only a scope for every app)."""
        if action not in ACTIONS:
            raise ValueError(f"unknown action {action!r}; known: {', '.join(sorted(ACTIONS))}")
        return any(scope_allows(scope, action, env, app) for scope in self.scopes)

    @property
    def actor(self) -> str:
        """The name the audit log gives it: `alice`, `token:ci`, `alice (token laptop)`."""
        if self.kind == "user":
            return self.name
        return f"{self.user} (token {self.name})" if self.user else f"token:{self.name}"


def scope_allows(scope: str, action: str, env: str | None, app: str | None = None) -> bool:
    if scope == "admin":
        return True
    if action in ENV_ACTIONS:
        kind, sep, glob = scope.partition(":")
        if kind != action or not sep:
            return False
        apps, slash, glob = glob.rpartition("/")
        if slash and not (apps == "*" if app is None else fnmatchcase(app, apps)):
            return False
        return glob == "*" if env is None else fnmatchcase(env, glob)
    if action == "read":
        return True
    return action == "read:logs" and scope == "read:logs"


def parse_scope(text: str) -> str:
    """A scope as given on the command line or in a request, checked; UsageError if not one."""
    scope = text.strip()
    if scope in PLAIN_SCOPES:
        return scope
    kind, sep, glob = scope.partition(":")
    if kind in ENV_ACTIONS and sep:
        apps, slash, envs = glob.partition("/")
        if slash and not GLOB.fullmatch(apps):
            raise UsageError(f"scope {text!r}: {apps!r} is not an app name or pattern",
                             "app names are lower-case letters, digits and -; * and ? match any "
                             "characters, e.g. deploy:shop/staging, deploy:shop-*/test")
        if GLOB.fullmatch(envs if slash else glob):
            return scope
        raise UsageError(f"scope {text!r}: {(envs if slash else glob)!r} is not an env name or pattern",
                         "env names are lower-case letters, digits and -; * and ? match any "
                         "characters, e.g. deploy:test, deploy:pr-*, deploy:shop/test")
    raise UsageError(f"unknown scope {text!r}", SCOPES_HINT)


def parse_scopes(texts: Iterable[str]) -> frozenset[str]:
    scopes = frozenset(parse_scope(text) for text in texts)
    if not scopes:
        raise UsageError("no scope given", "--scope SCOPE, once per scope; " + SCOPES_HINT)
    return scopes


def parse_expiry(text: str) -> timedelta | None:
    """`--expires`: a duration (30d, 12h, 2w) or `never` (None)."""
    from envplane.preview import duration

    if text.strip() == "never":
        return None
    try:
        expires = duration(text)
    except OverflowError:
        expires = MAX_EXPIRY * 2
    if expires < timedelta(minutes=1) or expires > MAX_EXPIRY:
        raise UsageError(f"--expires {text}: a token lasts from 1 minute to {MAX_EXPIRY.days} days",
                         "e.g. --expires 30d, or --expires never")
    return expires


def _stored(scopes: frozenset[str]) -> str:
    return " ".join(sorted(scopes))


def _loaded(text: str) -> frozenset[str]:
    return frozenset(text.split())


def _now(now: datetime | None) -> datetime:
    return (now or datetime.now(UTC)).astimezone(UTC)


def check_name(name: str, pattern: re.Pattern[str], what: str) -> str:
    if not isinstance(name, str) or not pattern.fullmatch(name):
        allowed = "letters, digits and ._@+-" if pattern is USER_NAME else "letters, digits and ._-"
        raise UsageError(f"{name!r} is not a valid {what} name",
                         f"{allowed}, starting with a letter or digit, at most 100 characters")
    return name


# --- tokens ---------------------------------------------------------------------------------

@dataclass(frozen=True)
class TokenInfo:
    """A token as listed: never the token itself, which only its creator saw once."""

    name: str
    scopes: frozenset[str]
    user: str | None
    created_at: datetime
    created_by: str
    expires_at: datetime | None
    last_used_at: datetime | None
    revoked_at: datetime | None
    sealed: bool = True  # False: its row was changed outside envplane, and it counts for nothing

    def state(self, now: datetime | None = None) -> str:
        if not self.sealed:
            return "invalid"
        if self.revoked_at is not None:
            return "revoked"
        if self.expires_at is not None and self.expires_at <= _now(now):
            return "expired"
        return "active"

    def as_dict(self, now: datetime | None = None) -> dict[str, Any]:
        def iso(at: datetime | None) -> str | None:
            return at.isoformat() if at else None

        return {"name": self.name, "scopes": sorted(self.scopes), "user": self.user,
                "state": self.state(now), "created_at": iso(self.created_at), "created_by": self.created_by,
                "expires_at": iso(self.expires_at), "last_used_at": iso(self.last_used_at),
                "revoked_at": iso(self.revoked_at)}


def _token_fields(row: ServerTokenRow) -> dict[str, Any]:
    """What a token grants, sealed (its last use is not: it changes at every request)."""
    return {"name": row.name, "token_hash": row.token_hash, "scopes": row.scopes, "owner": row.owner,
            "expires_at": row.expires_at, "revoked_at": row.revoked_at}


def _token_info(store: Store, row: ServerTokenRow) -> TokenInfo:
    return TokenInfo(row.name, _loaded(row.scopes), row.owner, row.created_at, row.created_by,
                     row.expires_at, row.last_used_at, row.revoked_at,
                     seals.intact(store, "server_tokens", _token_fields(row), row.seal))


def token_hash(raw: str) -> str:
    return hashlib.sha256(raw.encode("utf-8")).hexdigest()


def create_token(store: Store, name: str, scopes: Iterable[str],
                 expires: timedelta | None = DEFAULT_EXPIRY, *, user: str | None = None,
                 actor: str = "envplane", now: datetime | None = None) -> tuple[TokenInfo, Secret]:
    """A new token; returns its listing and the token itself, which is never seen again
    (only its hash is kept). `expires=None`: it never expires. `user`: the person it acts
    for (needed to approve). A name taken by a live token is refused; a revoked or expired
    token's name is reused (its history stays in the audit log)."""
    check_name(name, TOKEN_NAME, "token")
    granted = parse_scopes(scopes)
    if expires is not None and expires <= timedelta(0):
        raise UsageError(f"token {name}: an expiry must be in the future", "e.g. --expires 30d")
    at = _now(now)
    raw = TOKEN_PREFIX + secrets.token_urlsafe(TOKEN_BYTES)
    try:
        with store.serialised("server-auth") as session:
            if user is not None and session.scalars(
                    select(ServerUserRow).where(ServerUserRow.name == user)).first() is None:
                raise NotFound(f"no user {user!r} to own token {name}", "see `envplane users list`")
            old = session.scalars(select(ServerTokenRow).where(ServerTokenRow.name == name)).first()
            if old is not None:
                if _token_info(store, old).state(at) == "active":
                    raise UsageError(f"a token named {name} exists already",
                                     f"pick another name, or `envplane tokens revoke {name}` first")
                session.delete(old)
                session.flush()
            row = ServerTokenRow(name=name, token_hash=token_hash(raw), scopes=_stored(granted), owner=user,
                                 created_at=at, created_by=actor,
                                 expires_at=at + expires if expires is not None else None)
            row.seal = seals.seal(store, "server_tokens", _token_fields(row))
            session.add(row)
            session.flush()
            info = _token_info(store, row)
    except IntegrityError:  # a create of the same name in another process won the race
        raise UsageError(f"a token named {name} exists already",
                         f"pick another name, or `envplane tokens revoke {name}` first") from None
    audit.record(store, actor, "token-create", None, None, None, "ok",
                 {"token": name, "scopes": sorted(granted), "user": user,
                  "expires_at": info.expires_at.isoformat() if info.expires_at else None})
    return info, Secret(raw)


def authenticate_token(store: Store, raw: str | Secret | None,
                       now: datetime | None = None) -> Principal | None:
    """The principal a bearer token stands for; None when it is no token of ours, or revoked,
    or expired, or its owner was removed. Records its last use (at most once a minute)."""
    text = raw.reveal() if isinstance(raw, Secret) else raw
    if not isinstance(text, str) or not text.startswith(TOKEN_PREFIX) or len(text) > MAX_TOKEN:
        return None
    digest = token_hash(text)
    at = _now(now)
    with store.session() as session:  # reads only: many requests at once must not queue here
        row = session.scalars(select(ServerTokenRow).where(ServerTokenRow.token_hash == digest)).first()
        if row is None or not hmac.compare_digest(row.token_hash, digest):
            return None
        info = _token_info(store, row)
        if info.state(at) != "active":  # revoked, expired, or its row changed outside envplane
            return None
        if info.user is not None and _user(store, session, info.user) is None:
            return None
        token_id = row.id
    if info.last_used_at is None or at - info.last_used_at >= LAST_USE_EVERY:
        # A write of its own, taken in turn (SQLite: BEGIN IMMEDIATE waits; a read transaction
        # that tried to write would fail at once when another request wrote first), and only
        # by the first of the requests that arrive together.
        last = ServerTokenRow.last_used_at
        stale = or_(last.is_(None), last <= at - LAST_USE_EVERY)
        with store.serialised("server-token-use") as session:
            session.execute(update(ServerTokenRow).where(ServerTokenRow.id == token_id, stale)
                            .values(last_used_at=at))
    return Principal(info.name, "token", info.scopes, info.user)


def list_tokens(store: Store) -> list[TokenInfo]:
    with store.session() as session:
        rows = session.scalars(select(ServerTokenRow).order_by(ServerTokenRow.name))
        return [_token_info(store, row) for row in rows]


def revoke_token(store: Store, name: str, *, actor: str = "envplane",
                 now: datetime | None = None) -> TokenInfo:
    """Revoke a token at once: the next request with it is refused. NotFound if no such
    token; revoking a revoked one changes nothing."""
    check_name(name, TOKEN_NAME, "token")
    at = _now(now)
    with store.serialised("server-auth") as session:
        row = session.scalars(select(ServerTokenRow).where(ServerTokenRow.name == name)).first()
        if row is None:
            raise NotFound(f"no token named {name}", "see `envplane tokens list`")
        already = row.revoked_at is not None
        if not already:
            row.revoked_at = at
            row.seal = seals.seal(store, "server_tokens", _token_fields(row))
        info = _token_info(store, row)
    if not already:
        audit.record(store, actor, "token-revoke", None, None, None, "ok", {"token": name})
    return info


# --- users ----------------------------------------------------------------------------------

@dataclass(frozen=True)
class UserInfo:
    name: str
    scopes: frozenset[str]
    created_at: datetime
    sealed: bool = True  # False: its row was changed outside envplane, and it cannot log in

    def as_dict(self) -> dict[str, Any]:
        return {"name": self.name, "scopes": sorted(self.scopes), "created_at": self.created_at.isoformat(),
                "valid": self.sealed}


def _user_fields(row: ServerUserRow) -> dict[str, Any]:
    return {"name": row.name, "password_hash": row.password_hash, "scopes": row.scopes}


def _user(store: Store, session: Session, name: str) -> ServerUserRow | None:
    """The user's row when there is one and its seal holds."""
    row = session.scalars(select(ServerUserRow).where(ServerUserRow.name == name)).first()
    if row is None or not seals.intact(store, "server_users", _user_fields(row), row.seal):
        return None
    return row


def hash_password(password: str) -> str:
    salt = secrets.token_bytes(16)
    digest = _scrypt(password, salt, SCRYPT_LOG_N, SCRYPT_R, SCRYPT_P)
    return "$".join(["scrypt", str(SCRYPT_LOG_N), str(SCRYPT_R), str(SCRYPT_P),
                     base64.b64encode(salt).decode(), base64.b64encode(digest).decode()])


def password_matches(password: str, stored: str) -> bool:
    try:
        scheme, log_n, r, p, salt, digest = stored.split("$")
        if scheme != "scrypt":
            return False
        expected = base64.b64decode(digest, validate=True)
        found = _scrypt(password, base64.b64decode(salt, validate=True), int(log_n), int(r), int(p))
    except (ValueError, TypeError):
        return False
    return hmac.compare_digest(found, expected)


def _scrypt(password: str, salt: bytes, log_n: int, r: int, p: int) -> bytes:
    n = 1 << log_n
    return hashlib.scrypt(password.encode("utf-8"), salt=salt, n=n, r=r, p=p, dklen=32,
                          maxmem=256 * n * r * p + (1 << 20))


@cache
def _nobody() -> str:
    """Compared against when the user does not exist, so that an unknown name costs one scrypt too."""
    return hash_password(secrets.token_urlsafe(16))


def _check_password_text(password: str | Secret) -> str:
    text = password.reveal() if isinstance(password, Secret) else password
    if not isinstance(text, str) or len(text) < MIN_PASSWORD:
        raise UsageError(f"a password needs at least {MIN_PASSWORD} characters",
                         "a passphrase of a few words is easy to type and hard to guess")
    if len(text) > MAX_PASSWORD:
        raise UsageError(f"a password may have at most {MAX_PASSWORD} characters")
    return text


def add_user(store: Store, name: str, password: str | Secret, scopes: Iterable[str] = ("read",), *,
             actor: str = "envplane", now: datetime | None = None) -> UserInfo:
    """A new user who logs in with `password` (kept only as an scrypt hash)."""
    check_name(name, USER_NAME, "user")
    granted = parse_scopes(scopes)
    hashed = hash_password(_check_password_text(password))
    exists = UsageError(f"a user named {name} exists already",
                        f"pick another name, or `envplane users remove {name}` first")
    try:
        with store.serialised("server-auth") as session:
            if session.scalars(select(ServerUserRow).where(ServerUserRow.name == name)).first() is not None:
                raise exists
            row = ServerUserRow(name=name, password_hash=hashed, scopes=_stored(granted),
                                created_at=_now(now))
            row.seal = seals.seal(store, "server_users", _user_fields(row))
            session.add(row)
            session.flush()
            info = UserInfo(row.name, granted, row.created_at)
    except IntegrityError:
        raise exists from None
    audit.record(store, actor, "user-add", None, None, None, "ok", {"user": name, "scopes": sorted(granted)})
    return info


def set_password(store: Store, name: str, password: str | Secret, *, actor: str = "envplane") -> None:
    check_name(name, USER_NAME, "user")
    hashed = hash_password(_check_password_text(password))
    with store.serialised("server-auth") as session:
        row = session.scalars(select(ServerUserRow).where(ServerUserRow.name == name)).first()
        if row is None:
            raise NotFound(f"no user named {name}", "see `envplane users list`")
        if _user(store, session, name) is None:  # else a new seal would bless what was changed
            raise StateError(f"the row of user {name} was changed outside envplane (its seal does not hold)",
                             f"`envplane users remove {name}` and add them again; see the audit log")
        row.password_hash = hashed
        row.seal = seals.seal(store, "server_users", _user_fields(row))
    audit.record(store, actor, "user-password", None, None, None, "ok", {"user": name})


def remove_user(store: Store, name: str, *, actor: str = "envplane") -> None:
    """Remove a user; the tokens acting for them stop working with them (and are revoked)."""
    check_name(name, USER_NAME, "user")
    with store.serialised("server-auth") as session:
        row = session.scalars(select(ServerUserRow).where(ServerUserRow.name == name)).first()
        if row is None:
            raise NotFound(f"no user named {name}", "see `envplane users list`")
        session.execute(delete(ServerUserRow).where(ServerUserRow.name == name))
        for token in session.scalars(select(ServerTokenRow).where(ServerTokenRow.owner == name,
                                                                  ServerTokenRow.revoked_at.is_(None))):
            token.revoked_at = _now(None)
            token.seal = seals.seal(store, "server_tokens", _token_fields(token))
    audit.record(store, actor, "user-remove", None, None, None, "ok", {"user": name})


def list_users(store: Store) -> list[UserInfo]:
    with store.session() as session:
        return [UserInfo(row.name, _loaded(row.scopes), row.created_at,
                         seals.intact(store, "server_users", _user_fields(row), row.seal))
                for row in session.scalars(select(ServerUserRow).order_by(ServerUserRow.name))]


def user_principal(store: Store, name: str, stamp: str | None = None) -> Principal | None:
    """The user as the server holds them now (a live session asks at each request): None when
    they were removed, or their row was changed outside envplane (its seal does not hold), or
    — given the `password_stamp` of a login — their password changed since."""
    if not isinstance(name, str) or not USER_NAME.fullmatch(name):
        return None
    with store.session() as session:
        row = _user(store, session, name)
        if row is None or (stamp is not None and not hmac.compare_digest(stamp, _stamp(row.password_hash))):
            return None
        return Principal(row.name, "user", _loaded(row.scopes))


def password_stamp(store: Store, name: str) -> str | None:
    """Names the user's password as it is now (not its hash): a login session keeps it, so
    `users passwd` — or removing the user and adding them again — ends the sessions of before."""
    with store.session() as session:
        row = _user(store, session, name)
        return _stamp(row.password_hash) if row is not None else None


def _stamp(password_hash: str) -> str:
    return hashlib.sha256(f"envplane-session:{password_hash}".encode()).hexdigest()


def check_password(store: Store, user: str, password: str | Secret) -> Principal | None:
    """The user when the password is theirs; else None (an unknown user costs the same time)."""
    text = password.reveal() if isinstance(password, Secret) else password
    if not isinstance(user, str) or not isinstance(text, str) or len(text) > MAX_PASSWORD:
        return None
    row = None
    if USER_NAME.fullmatch(user):
        with store.session() as session:
            row = _user(store, session, user)
    matched = password_matches(text, row.password_hash if row is not None else _nobody())
    if row is None or not matched:
        return None
    return Principal(row.name, "user", _loaded(row.scopes))

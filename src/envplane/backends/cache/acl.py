"""Redis ACL rules and key patterns as data: pure functions, nothing here connects.

An instance's prefix is `{app}:{slug}:` (e.g. `finance-report:staging:`); its ACL user is
the prefix without the last colon. The trailing colon matters: `finance-report:pr-5:*`
never matches a key of `pr-50`.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from dataclasses import dataclass, field

from envplane.errors import UsageError
from envplane.secret import Secret

_SEGMENT = r"[A-Za-z0-9][A-Za-z0-9._-]*"
_PREFIX = re.compile(rf"^{_SEGMENT}:{_SEGMENT}:$")
_GLOB = re.compile(r"([*?\[\]\\])")
# Every command but server administration and the ones that reach beyond a key prefix
# (KEYS, FLUSHALL, DEBUG, ...): what an application needs, nothing that touches others.
# Redis checks key patterns only on commands that name keys, so SCAN, RANDOMKEY, PUBSUB
# CHANNELS/NUMSUB and CLIENT TRACKING BCAST would show other instances' key and channel
# names: they go too (subcommand rules need Redis 7).
COMMANDS = "+@all -@admin -@dangerous -scan -randomkey -pubsub -client|tracking"


def check_prefix(prefix: str) -> str:
    if not _PREFIX.match(prefix):
        raise UsageError(
            f"{prefix!r} is not a Redis key prefix envplane makes",
            "use {app}:{instance}: - letters, digits, '.', '_' or '-', two segments, a final ':'",
        )
    return prefix


def user_name(prefix: str) -> str:
    return check_prefix(prefix)[:-1]


def password_hash(password: Secret) -> str:
    """The SHA-256 hex Redis stores; rules carry it (`#hash`) so they never hold the password."""
    return hashlib.sha256(password.reveal().encode("utf-8")).hexdigest()


def key_pattern(prefix: str) -> str:
    return f"{check_prefix(prefix)}*"


def scan_pattern(prefix: str) -> str:
    """The MATCH pattern of SCAN: the prefix taken literally, then anything."""
    return _GLOB.sub(r"\\\1", check_prefix(prefix)) + "*"


def acl_rules(prefix: str, hashed: str) -> list[str]:
    """ACL SETUSER rules that make the user exactly this, whatever it was before."""
    pattern = key_pattern(prefix)
    return ["reset", "on", f"#{hashed}", f"~{pattern}", f"&{pattern}", *COMMANDS.split()]


@dataclass(frozen=True)
class CacheFacts:
    prefix: str
    user: str
    exists: bool
    enabled: bool = False
    keys: str = ""
    channels: str = ""
    commands: str = ""
    # Hashes of the user's passwords; hidden from repr because they allow offline guessing.
    password_hashes: tuple[str, ...] = field(default=(), repr=False)

    def keys_observed(self) -> frozenset[str]:
        """The `kind:name` keys plan.Observed expects."""
        return frozenset({f"cache:{self.prefix}"} if self.exists else set())


def parse_user(prefix: str, reply: Mapping[str, object] | None) -> CacheFacts:
    """Read redis-py's ACL GETUSER answer (None when the user does not exist)."""
    user = user_name(prefix)
    if reply is None:
        return CacheFacts(prefix, user, exists=False)
    flags = [str(f) for f in _as_list(reply.get("flags"))]
    return CacheFacts(
        prefix,
        user,
        exists=True,
        enabled="on" in flags,
        keys=" ".join(str(k) for k in _as_list(reply.get("keys"))),
        channels=" ".join(str(c) for c in _as_list(reply.get("channels"))),
        # redis-py splits the rules into categories and single commands; keep both, in order.
        commands=" ".join(str(c) for c in [*_as_list(reply.get("categories")),
                                           *_as_list(reply.get("commands"))]),
        password_hashes=tuple(str(p) for p in _as_list(reply.get("passwords"))),
    )


def differences(facts: CacheFacts, hashed: str) -> list[str]:
    """What differs between an existing user and the one acl_rules make; [] when none."""
    pattern = key_pattern(facts.prefix)
    out = []
    if not facts.enabled:
        out.append("user was disabled")
    if facts.keys != f"~{pattern}":
        out.append(f"keys were {facts.keys or 'none'}")
    if facts.channels != f"&{pattern}":
        out.append(f"channels were {facts.channels or 'none'}")
    if not _same_commands(facts.commands):
        out.append(f"commands were {facts.commands or 'none'}")
    if facts.password_hashes != (hashed,):
        out.append("password differs")
    return out


def _same_commands(observed: str) -> bool:
    # Redis 7 drops "-@admin" from its answer because @dangerous includes it; any other
    # word missing or added (a single command allowed back, another category) is a difference.
    words = set(observed.split())
    wanted = set(COMMANDS.split())
    return wanted - {"-@admin"} <= words <= wanted


def _as_list(value: object) -> list[object]:
    # Redis 6 answers lists for keys and channels; Redis 7 answers one space-separated string.
    if value is None:
        return []
    if isinstance(value, str | bytes):
        text = value.decode() if isinstance(value, bytes) else value
        return list(text.split())
    if isinstance(value, list | tuple):
        return [v.decode() if isinstance(v, bytes) else v for v in value]
    return [value]

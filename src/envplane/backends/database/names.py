"""Which database and role names a backend accepts. names.sql_identifier makes them."""

from __future__ import annotations

import re

from envplane.errors import UsageError

_IDENTIFIER = re.compile(r"^[a-z0-9_]{1,63}$")
# Names PostgreSQL keeps for itself: a role named pg_* cannot be created, and the
# system databases must never be dropped by a purge.
_RESERVED = frozenset({"postgres", "template0", "template1", "public", "current_user", "session_user"})


def check_name(name: str) -> str:
    """Return name when it is a database/role name envplane may create and drop."""
    if not _IDENTIFIER.match(name):
        raise UsageError(
            f"{name!r} is not a database name envplane makes",
            "use 1-63 characters of a-z, 0-9 and '_' (names.sql_identifier)",
        )
    if name in _RESERVED or name.startswith("pg_"):
        raise UsageError(f"{name!r} is reserved by PostgreSQL", "choose another app or env name")
    return name

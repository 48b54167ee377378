"""Per-instance databases: a role and a database on PostgreSQL, or a SQLite file.

`Change` lives here because every resource backend (database, objects, cache) reports
with it; it is the one thing they share.
"""

from envplane.backends.database.change import Change, create, delete, noop, update

__all__ = ["Change", "create", "delete", "noop", "update"]

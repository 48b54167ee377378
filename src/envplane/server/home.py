"""Where `envplane serve` keeps its own state: users, tokens, registered apps, its audit log.

ENVPLANE_STATE_URL (PostgreSQL) when set, as for every app; else SQLite in the server's home,
`$ENVPLANE_SERVER_HOME` (default `$XDG_DATA_HOME/envplane`, i.e. `~/.local/share/envplane`).
Same schema, same Alembic chain as the apps' stores. The home also holds the server's
approval key (server/approvals.py), which never goes into the database.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Mapping
from pathlib import Path

from sqlalchemy.engine import URL

from envplane.errors import StateError, UsageError
from envplane.private import FOLDER_MODE
from envplane.state import audit_key
from envplane.state.db import Store, open_store

HOME_ENV = "ENVPLANE_SERVER_HOME"
STORE_FILE = "server.db"
# Its audit key: ENVPLANE_AUDIT_KEY, else ~/.config/envplane/keys/audit-envplane.server.key
# (a name no app can have: app names take no dot).
AUDIT_NAME = "envplane.server"


def server_home(environ: Mapping[str, str]) -> Path:
    """The server's folder (not created here)."""
    named = environ.get(HOME_ENV, "").strip()
    if named:
        home = Path(named).expanduser()
        if not home.is_absolute():
            raise UsageError(f"{HOME_ENV} must be an absolute path, not {named!r}",
                             f"e.g. {HOME_ENV}=/var/lib/envplane")
        return home
    data = environ.get("XDG_DATA_HOME", "")
    base = Path(data) if data and Path(data).is_absolute() else Path.home() / ".local" / "share"
    return base / "envplane"


def open_server_store(environ: Mapping[str, str] | None = None) -> Store:
    """The server's state store, created and migrated on first use."""
    env = os.environ if environ is None else environ
    url = env.get("ENVPLANE_STATE_URL") or None
    home = server_home(env)
    if url is None:
        private_home(home)
        url = URL.create("sqlite", database=str(home / STORE_FILE)).render_as_string()
    return open_store(home, url, audit_key.for_app(AUDIT_NAME, env))


def private_home(home: Path) -> Path:
    """The home folder, made 0700: it holds the password hashes' database and the server's key."""
    try:
        home.mkdir(parents=True, exist_ok=True, mode=FOLDER_MODE)
        if home.stat().st_uid == os.getuid() and stat.S_IMODE(home.stat().st_mode) != FOLDER_MODE:
            home.chmod(FOLDER_MODE)
    except OSError as error:
        raise StateError(f"cannot create the server's folder {home}: {error.strerror or error}",
                         f"set {HOME_ENV} to a folder you may write") from error
    return home

"""Seals on the server's rows: what a user, a token or a registered app grants, under a key
the database does not hold.

The key is derived from the store's audit key (ENVPLANE_AUDIT_KEY, else the server's key
file: state/audit_key.py), so the same rule as the audit log holds: whoever can write the
database but cannot read the key can delete rows, but cannot add a user, change a password
hash or a user's scopes, mint a token, widen or revive one, or point an app at another spec
without the row failing its seal, and a row that fails counts for nothing.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from envplane.errors import StateError
from envplane.state.db import Store

LABEL = b"envplane server rows"


def _key(store: Store) -> bytes:
    if store.audit_key is None:
        raise StateError(f"the server's store at {store.where} was opened without its key",
                         "open it with envplane.server.home.open_server_store")
    return hmac.new(store.audit_key.raw, LABEL, hashlib.sha256).digest()


def _text(value: Any) -> Any:
    return value.isoformat() if isinstance(value, datetime) else value


def seal(store: Store, table: str, fields: Mapping[str, Any]) -> str:
    text = json.dumps({"table": table, **{k: _text(v) for k, v in fields.items()}}, sort_keys=True,
                      separators=(",", ":"))
    return hmac.new(_key(store), text.encode("utf-8"), hashlib.sha256).hexdigest()


def intact(store: Store, table: str, fields: Mapping[str, Any], found: str | None) -> bool:
    return found is not None and hmac.compare_digest(seal(store, table, fields), found)

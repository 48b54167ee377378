"""The key of the audit log's chain, kept outside the state store.

Rows are chained with HMAC-SHA256 under this key, so whoever can write the database but
cannot read the key cannot recompute the chain after an edit. The key comes from
ENVPLANE_AUDIT_KEY (base64 of 32 bytes; CI, or every machine that shares a PostgreSQL
store), else from `~/.config/envplane/keys/audit-{app}.key`, created on first use.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import hashlib
import hmac
import os
from collections.abc import Mapping
from dataclasses import dataclass, field

from envplane.errors import StateError
from envplane.private import create_key_file, key_file, read_key_file

KEY_ENV = "ENVPLANE_AUDIT_KEY"


@dataclass(frozen=True)
class AuditKey:
    raw: bytes = field(repr=False)
    source: str  # the variable or the key file, for messages

    @property
    def id(self) -> str:
        """A public name of the key, stored in each row it chains; reveals nothing of it."""
        return hmac.new(self.raw, b"envplane audit key id", hashlib.sha256).hexdigest()[:16]

    def sign(self, text: str) -> str:
        return hmac.new(self.raw, text.encode("utf-8"), hashlib.sha256).hexdigest()


def new_key() -> bytes:
    """A fresh key in the form ENVPLANE_AUDIT_KEY takes: base64 of 32 random bytes."""
    return base64.b64encode(os.urandom(32)) + b"\n"


def parse(text: str, source: str) -> AuditKey:
    try:
        raw = base64.b64decode(text.strip(), validate=True)
    except (binascii.Error, ValueError):
        raw = b""
    if len(raw) != 32:
        raise StateError(f"{source} is not an audit key",
                         "it must be the base64 of 32 bytes, e.g. the output of "
                         "python3 -c 'import os,base64;print(base64.b64encode(os.urandom(32)).decode())'")
    return AuditKey(raw, source)


def for_app(app: str, environ: Mapping[str, str]) -> AuditKey:
    """ENVPLANE_AUDIT_KEY, else the app's key file (created on first use)."""
    if environ.get(KEY_ENV):
        return parse(environ[KEY_ENV], KEY_ENV)
    path = key_file(f"audit-{app}", environ)
    if not path.exists():
        with contextlib.suppress(FileExistsError):  # another process made it first: use theirs
            create_key_file(path, new_key())
    return parse(read_key_file(path).decode("ascii", "replace"), str(path))

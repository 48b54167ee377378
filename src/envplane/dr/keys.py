"""The age keys of backups: who a backup is encrypted to, and what decrypts it.

Backups are encrypted to the spec's recipients (public keys). With none named, envplane
generates one identity per app, once, at `~/.config/envplane/keys/{app}-backup.age` (0600,
through private.key_file like every key outside the project) and says that DR needs a copy
of it elsewhere. The private key is never written beside the backups or into the state
store. A restore reads the identity from ENVPLANE_BACKUP_IDENTITY (a file), else that file.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path

from envplane.commands import backup as cmd
from envplane.dr.config import DrConfig
from envplane.errors import BackendError, UsageError
from envplane.private import create_key_file, key_file, read_key_file
from envplane.run import run

IDENTITY_VARIABLE = "ENVPLANE_BACKUP_IDENTITY"


def default_identity(app: str, environ: Mapping[str, str]) -> Path:
    return key_file(f"{app}-backup", environ, suffix=".age")


def recipients(config: DrConfig, app: str, environ: Mapping[str, str],
               warn: Callable[[str], None]) -> tuple[str, ...]:
    """The public keys a backup is encrypted to; the default identity is made on first use."""
    if config.recipients is not None:
        return config.recipients
    path = default_identity(app, environ)
    if not path.exists():
        made = run(cmd.age_keygen(), what="age-keygen").stdout.encode()
        try:
            create_key_file(path, made)
        except FileExistsError:
            pass  # another run made it first: use that one
        else:
            warn(f"generated the backups' age key {path}: without a copy of it elsewhere no backup "
                 "can be restored after losing this machine. Copy it to a safe place (or name your "
                 "own recipients under backup.recipients in envplane.yaml).")
    read_key_file(path)  # refuses a key others can read
    found = run(cmd.age_recipient_of(str(path)), what="age-keygen -y").stdout.split()
    if not found or not found[0].startswith("age1"):
        raise BackendError(f"{path} is not an age identity", "move it away; envplane makes a new one")
    return (found[0],)


def identity(app: str, environ: Mapping[str, str]) -> Path:
    """The identity file a restore decrypts with; refused when missing or readable by others."""
    given = environ.get(IDENTITY_VARIABLE)
    path = Path(given).expanduser() if given else default_identity(app, environ)
    if not path.exists():
        raise UsageError(
            f"no age identity to decrypt the backups of {app}: {path} does not exist",
            f"set {IDENTITY_VARIABLE} to the private key of one of the backup's recipients "
            f"(age-keygen's file), or copy it to {default_identity(app, environ)}")
    read_key_file(path)
    return path

"""Private folders and files: the one rule for everything envplane writes that may hold a secret.

A project's `.envplane/` holds the state store, the encrypted secrets, the rendered env
files (plaintext values, by design) and local data. It is made 0700 with a `.gitignore`
of `*` before anything is written into it, so neither another user of the host nor a
`git add -A` in the app's repository can reach what it holds. Files are written 0600.

Keys live apart from all of that, in `$XDG_CONFIG_HOME/envplane/keys/` (default
`~/.config`): the file secret store's `{app}.key`, the audit log's `audit-{app}.key`. No
copy of a project, no `git add` and no write access to a state database reaches them.
"""

from __future__ import annotations

import contextlib
import os
import stat
import tempfile
from collections.abc import Mapping
from pathlib import Path

from envplane.errors import BackendError

FOLDER = ".envplane"
GITIGNORE = "*\n"  # git ignores the folder's own .gitignore too: nothing inside is ever added
FOLDER_MODE = 0o700
FILE_MODE = 0o600


def project_folder(root: Path) -> Path:
    """root/.envplane, made private (see private_folder)."""
    return private_folder(root / FOLDER)


def private_folder(folder: Path) -> Path:
    """Create folder 0700 with a `.gitignore` of `*`, or bring an existing one to that; return it.

    An existing folder of another owner is left as it is (chmod would fail, and it is not
    ours to change); one of ours that an older envplane made 0755 is tightened.
    """
    folder.mkdir(parents=True, exist_ok=True, mode=FOLDER_MODE)
    info = folder.stat()
    if info.st_uid == os.getuid() and stat.S_IMODE(info.st_mode) != FOLDER_MODE:
        folder.chmod(FOLDER_MODE)
    ignore = folder / ".gitignore"
    if not ignore.exists():
        _replace(ignore, GITIGNORE.encode())
    return folder


def make_dirs(path: Path) -> Path:
    """`mkdir -p path`, making any `.envplane` folder on the way private first.

    Every writer that creates a folder under a project's `.envplane/` calls this, so the
    folder is private and git-ignored whichever command writes into it first.
    """
    for parent in [*reversed(path.parents), path]:
        if parent.name == FOLDER:
            private_folder(parent)
    path.mkdir(parents=True, exist_ok=True)
    return path


def write_private(path: Path, data: bytes) -> None:
    """Write data to path atomically (temp file + rename), mode 0600, in a folder made by make_dirs."""
    make_dirs(path.parent)
    _replace(path, data)


def _replace(path: Path, data: bytes) -> None:
    fd, temp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as out:  # mkstemp creates the file 0600
            out.write(data)
            out.flush()
            os.fsync(out.fileno())
        os.replace(temp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temp)
        raise


def restrict(path: Path) -> None:
    """Make an existing file of ours 0600 (files an older envplane wrote with the umask's mode)."""
    with contextlib.suppress(FileNotFoundError):
        info = path.stat()
        if info.st_uid == os.getuid() and stat.S_IMODE(info.st_mode) != FILE_MODE:
            path.chmod(FILE_MODE)


def write_in_place(path: Path, text: str) -> None:
    """Write text to a path the user named (`render -o`): in place, since it may be a pipe or
    a device that a rename would replace, and 0600 when it is a regular file."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, FILE_MODE)
    with os.fdopen(fd, "w", encoding="utf-8") as out:
        if stat.S_ISREG(os.fstat(fd).st_mode):
            os.fchmod(fd, FILE_MODE)
        out.write(text)


def key_file(name: str, environ: Mapping[str, str], suffix: str = ".key") -> Path:
    """`$XDG_CONFIG_HOME/envplane/keys/{name}.key` (default `~/.config`; a relative
    XDG_CONFIG_HOME is ignored, as the XDG spec says). The backups' age identity is
    `{app}-backup.age` there."""
    configured = environ.get("XDG_CONFIG_HOME") or os.environ.get("XDG_CONFIG_HOME") or ""
    base = Path(configured) if Path(configured).is_absolute() else Path.home() / ".config"
    return base / "envplane" / "keys" / f"{name}{suffix}"


def create_key_file(path: Path, key: bytes) -> None:
    """Write a new key file (0600, in a private folder); FileExistsError when one is there.

    O_EXCL: when two processes start at once, one creates the key and the other reads it."""
    try:
        private_folder(path.parent)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, FILE_MODE)
    except FileExistsError:
        raise
    except OSError as exc:
        raise BackendError(f"cannot create key file {path}: {exc.strerror}") from None
    with os.fdopen(fd, "wb") as out:
        out.write(key)
        out.flush()
        os.fsync(out.fileno())


def read_key_file(path: Path) -> bytes:
    """A key file's content; refused when others may read it (the key is no longer private)."""
    try:
        mode = path.stat().st_mode
        if mode & (stat.S_IRWXG | stat.S_IRWXO):
            raise BackendError(f"key file {path} is readable by others (mode {stat.S_IMODE(mode):o})",
                               f"chmod 600 {path}")
        return path.read_bytes()
    except OSError as exc:
        raise BackendError(f"cannot read key file {path}: {exc.strerror}") from None

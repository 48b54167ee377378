"""The embedded secret store: one AES-256-GCM encrypted file per project.

The whole document is encrypted at once, not each entry. The store holds a few
kilobytes, so rewriting it is cheap, and in return paths and key names are hidden too,
no entry can be swapped or rolled back on its own, and rotating the key is one rewrite.
Every write draws a fresh random 96-bit nonce; the format header is the associated data,
so a file of another format or version never decrypts as this one.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import fcntl
import json
import logging
import os
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from envplane.backends.secrets.base import check_keys, full, relative, under
from envplane.errors import BackendError, UsageError
from envplane.private import create_key_file, key_file, make_dirs, read_key_file, write_private
from envplane.secret import Secret
from envplane.spec.models import NAME as APP_NAME

KEY_ENV = "ENVPLANE_SECRET_KEY"
DATA_FILE = "secrets.enc"
KEY_FILE = "secrets.key"  # where envplane before 0.x kept the key: beside the data, in the project
NEXT_SUFFIX = ".next"  # `{key file}.next` exists only while rotate_key runs
HEADER = b"envplane-secrets-v1\n"
NONCE_BYTES = 12

Document = dict[str, dict[str, str]]
log = logging.getLogger("envplane.secrets")


@dataclass(frozen=True)
class DataKey:
    raw: bytes = field(repr=False)
    source: str  # where it came from, for error messages: the variable or the key file


def new_key() -> Secret:
    """A fresh key in the form ENVPLANE_SECRET_KEY takes: base64 of 32 random bytes."""
    return Secret(base64.b64encode(os.urandom(32)).decode())


def parse_key(text: Secret, source: str) -> DataKey:
    try:
        raw = base64.b64decode(text.reveal().strip(), validate=True)
    except (binascii.Error, ValueError):
        raw = b""
    if len(raw) != 32:
        raise BackendError(f"{source} is not a key", "it must be the base64 of 32 bytes, e.g. "
                           "python -c 'import os,base64;print(base64.b64encode(os.urandom(32)).decode())'")
    return DataKey(raw, source)


def key_path(app: str, environ: Mapping[str, str]) -> Path:
    """`$XDG_CONFIG_HOME/envplane/keys/{app}.key` (default `~/.config`): outside every project,
    so no `git add` and no copy of the project folder takes the key along with the data."""
    if not APP_NAME.match(app):
        raise UsageError(f"{app!r} is not an app name", "use a-z, 0-9 and '-'")
    return key_file(app, environ)


def load_key(folder: Path, environ: Mapping[str, str], app: str) -> DataKey:
    """The key from ENVPLANE_SECRET_KEY, else from the app's key file (created on first use).

    A key file an older envplane left beside the data (folder/secrets.key) moves to the
    key file's place first.
    """
    if environ.get(KEY_ENV):
        return parse_key(Secret(environ[KEY_ENV]), KEY_ENV)
    path = key_path(app, environ)
    _move_old_key(folder / KEY_FILE, path, app)
    if not path.exists():
        _create_key_file(path)
    return parse_key(Secret(read_key_file(path).decode()), str(path))


def _move_old_key(old: Path, path: Path, app: str) -> None:
    if not old.exists():
        return
    key = read_key_file(old)
    try:
        _create_key_file(path, key)
    except FileExistsError:
        if read_key_file(path).strip() != key.strip():
            raise BackendError(
                f"two keys for app {app}: {old} (inside the project) and {path}",
                f"keep the one that opens {old.parent / DATA_FILE} at {path} and delete the other, "
                f"or set {KEY_ENV} to the content of {old}") from None
    old.unlink(missing_ok=True)
    log.warning("moved the secret store's key from %s to %s: a key inside the project could be "
                "committed or copied along with it", old, path)


def _create_key_file(path: Path, key: bytes | None = None) -> None:
    """Write a new key file; a given key raises FileExistsError when one is there, a new one
    (None) leaves the one there."""
    try:
        create_key_file(path, key if key is not None else (new_key().reveal() + "\n").encode())
    except FileExistsError:
        if key is not None:
            raise


def encrypt(document: Document, key: DataKey) -> bytes:
    nonce = os.urandom(NONCE_BYTES)
    plain = json.dumps(document, sort_keys=True).encode()
    return HEADER + nonce + AESGCM(key.raw).encrypt(nonce, plain, HEADER)


def decrypt(blob: bytes, key: DataKey, file: Path) -> Document:
    body = blob[len(HEADER):]
    if not blob.startswith(HEADER) or len(body) <= NONCE_BYTES:
        raise BackendError(f"{file} is not an envplane secret store", "restore it from a backup")
    try:
        plain = AESGCM(key.raw).decrypt(body[:NONCE_BYTES], body[NONCE_BYTES:], HEADER)
    except InvalidTag:
        raise BackendError(f"cannot decrypt {file}: wrong {KEY_ENV}?", _wrong_key_hint(key, file)) from None
    document: Document = json.loads(plain)
    return document


def _wrong_key_hint(key: DataKey, file: Path) -> str:
    pending = Path(key.source + NEXT_SUFFIX)
    if key.source != KEY_ENV and pending.exists():
        return f"a key rotation was interrupted: the new key is in {pending}"
    return f"the key came from {key.source}; set {KEY_ENV} to the key this store was written with"


class FileSecretStore:
    """Secrets in folder/secrets.enc, read and written whole under a lock."""

    def __init__(self, folder: Path, key: DataKey) -> None:
        self.folder = folder
        self.file = folder / DATA_FILE
        self._key = key

    @classmethod
    def open(cls, folder: Path, environ: Mapping[str, str], app: str) -> FileSecretStore:
        """The store in folder (a project's .envplane), keyed by the app's key."""
        return cls(folder, load_key(folder, environ, app))

    def __repr__(self) -> str:
        return f"FileSecretStore({str(self.file)!r})"

    def read(self, path: str) -> dict[str, Secret]:
        values = self._load().get(relative(path), {})
        return {key: Secret(value) for key, value in values.items()}

    def write(self, path: str, values: Mapping[str, Secret]) -> None:
        check_keys(path, values)
        rel = relative(path)
        with self._locked():
            document = self._load()
            merged = {**document.get(rel, {}), **{k: v.reveal() for k, v in values.items()}}
            self._save({**document, rel: merged}, self._key)

    def remove(self, path: str, keys: Iterable[str]) -> list[str]:
        rel, doomed = relative(path), set(keys)
        with self._locked():
            document = self._load()
            current = document.get(rel, {})
            gone = sorted(doomed & current.keys())
            if gone:
                rest = {k: v for k, v in current.items() if k not in doomed}
                others = {r: v for r, v in document.items() if r != rel}
                self._save({**others, rel: rest} if rest else others, self._key)
            return gone

    def delete(self, path: str) -> None:
        target = relative(path)
        self._remove(lambda rel: rel == target)

    def list(self, prefix: str) -> list[str]:
        start = relative(prefix)
        return sorted(full(rel) for rel in self._load() if under(rel, start))

    def delete_tree(self, prefix: str) -> int:
        start = relative(prefix)
        return self._remove(lambda rel: under(rel, start))

    def rotate_key(self, new: Secret) -> None:
        """Re-encrypt everything with new; the old key no longer opens the store.

        With a key file, the new key replaces it. With ENVPLANE_SECRET_KEY, set the
        variable to the new key before the next run.
        """
        key = parse_key(new, "the new key")
        with self._locked():
            document = self._load()
            if self._key.source == KEY_ENV:
                self._save(document, key)
                self._key = DataKey(key.raw, KEY_ENV)
                return
            # The new key is on disk before the data it opens: an interrupted rotation
            # leaves {key file}.next, which the wrong-key error points to.
            key_file = Path(self._key.source)
            next_file = Path(self._key.source + NEXT_SUFFIX)
            write_private(next_file, new.reveal().encode() + b"\n")
            self._save(document, key)
            os.replace(next_file, key_file)
            self._key = DataKey(key.raw, self._key.source)

    def _remove(self, doomed: Callable[[str], bool]) -> int:
        with self._locked():
            document = self._load()
            gone = [rel for rel in document if doomed(rel)]
            if gone:
                self._save({rel: v for rel, v in document.items() if rel not in gone}, self._key)
            return len(gone)

    def _load(self) -> Document:
        try:
            blob = self.file.read_bytes()
        except FileNotFoundError:
            return {}
        except OSError as exc:
            raise BackendError(f"cannot read {self.file}: {exc.strerror}") from None
        return decrypt(blob, self._key, self.file)

    def _save(self, document: Document, key: DataKey) -> None:
        try:
            write_private(self.file, encrypt(document, key))
        except OSError as exc:
            raise BackendError(f"cannot write {self.file}: {exc.strerror}") from None

    def _locked(self) -> contextlib.AbstractContextManager[None]:
        return locked(self.folder / "secrets.lock")


@contextlib.contextmanager
def locked(lock_file: Path) -> Iterator[None]:
    """Serialise read-merge-write across processes; readers need no lock (rename is atomic)."""
    try:
        make_dirs(lock_file.parent)
        handle = os.fdopen(os.open(lock_file, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600), "a")
    except OSError as exc:
        raise BackendError(f"cannot lock {lock_file}: {exc.strerror}") from None
    with handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        yield

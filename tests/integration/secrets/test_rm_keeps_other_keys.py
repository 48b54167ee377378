"""`envplane secrets rm` is one read-modify-write (#9.14): a failure changes nothing, and a
writer that comes in between the read and the write loses nothing.

The command runs in-process (Typer's runner) so that the test can step in between; the
stores are the real ones: the file store, SOPS + age, and OpenBao for Vault's KV v2.
"""

from __future__ import annotations

import os
import threading
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import hvac  # type: ignore[import-untyped]
import pytest
import requests
from hvac.api.secrets_engines.kv_v2 import KvV2  # type: ignore[import-untyped]
from typer.testing import CliRunner

from envplane.backends.secrets import open_secret_store
from envplane.backends.secrets.base import SecretStore
from envplane.backends.secrets.file import FileSecretStore
from envplane.backends.secrets.sops import SopsSecretStore
from envplane.cli.main import app as cli_app
from envplane.errors import NothingToDo
from envplane.secret import Secret
from tests.integration.secrets.test_sops_store import age_key
from tests.integration.secrets.test_vault_store import HOW, reachable
from tests.support import need

APP = "rmtest"
PATH = f"secret/data/{APP}/staging/web"
BEFORE = {"GONE": Secret("removed-value"), "KEPT": Secret("kept-value")}


def project(folder: Path) -> Path:
    (folder / "compose.yaml").write_text("services:\n  web:\n    image: busybox:stable\n")
    spec = folder / "envplane.yaml"
    spec.write_text(f"app: {APP}\ndomain: example.com\ncompose: compose.yaml\n")
    return spec


def rm(spec: Path, environ: dict[str, str]) -> Any:
    return CliRunner().invoke(cli_app, ["secrets", "rm", "staging", "GONE", "-s", "web", "--spec", str(spec)],
                              env=environ)


def once(action: Callable[[], None]) -> Callable[[], None]:
    done: list[bool] = []

    def first_time() -> None:
        if not done:
            done.append(True)
            action()
    return first_time


# ---- the file store and SOPS: a lock around the read-modify-write


def concurrent_writer(store_of: Callable[[], SecretStore]) -> tuple[Callable[[], None], threading.Thread]:
    """A writer in another thread (its own store object, its own lock handle): it blocks while
    rm holds the store's lock, and writes at once when nothing does."""
    thread = threading.Thread(target=lambda: store_of().write(PATH, {"NEW": Secret("written-meanwhile")}))

    def start() -> None:
        thread.start()
        thread.join(timeout=2)  # long enough to finish when nothing holds it back
    return start, thread


def test_file_store_rm_keeps_a_key_written_meanwhile(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    spec = project(tmp_path)
    environ = {"ENVPLANE_SECRETS": "file", "ENVPLANE_SECRET_KEY": "", "XDG_CONFIG_HOME": str(tmp_path / "config")}
    store = open_secret_store("file", tmp_path, environ, APP)
    store.write(PATH, BEFORE)

    start, thread = concurrent_writer(lambda: open_secret_store("file", tmp_path, environ, APP))
    hook = once(start)
    load = FileSecretStore._load

    def load_then_write(self: FileSecretStore) -> Any:
        found = load(self)
        hook()
        return found

    monkeypatch.setattr(FileSecretStore, "_load", load_then_write)
    done = rm(spec, environ)
    thread.join(timeout=30)
    assert done.exit_code == 0, done.output
    assert store.read(PATH) == {"KEPT": BEFORE["KEPT"], "NEW": Secret("written-meanwhile")}


def test_sops_rm_keeps_a_key_written_meanwhile(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    key = age_key(tmp_path)
    spec = project(tmp_path)
    environ = {"ENVPLANE_SECRETS": "sops", "SOPS_AGE_KEY_FILE": str(key)}
    store = open_secret_store("sops", tmp_path, {**os.environ, **environ}, APP)
    store.write(PATH, BEFORE)

    start, thread = concurrent_writer(lambda: open_secret_store("sops", tmp_path, {**os.environ, **environ}, APP))
    hook = once(start)
    decrypt = SopsSecretStore._decrypt

    def decrypt_then_write(self: SopsSecretStore, file: Path) -> Any:
        found = decrypt(self, file)
        hook()
        return found

    monkeypatch.setattr(SopsSecretStore, "_decrypt", decrypt_then_write)
    done = rm(spec, environ)
    thread.join(timeout=60)
    assert done.exit_code == 0, done.output
    assert store.read(PATH) == {"KEPT": BEFORE["KEPT"], "NEW": Secret("written-meanwhile")}


# ---- Vault (OpenBao): check-and-set on the version read


@pytest.fixture
def vault(tmp_path: Path) -> Iterator[tuple[hvac.Client, dict[str, str]]]:
    addr, token = os.environ.get("VAULT_ADDR", ""), os.environ.get("VAULT_TOKEN", "")
    need("OpenBao", bool(addr and token) and reachable(addr), f"nothing answers at {addr!r}; {HOW}")
    root = hvac.Client(url=addr, token=token)
    mount = f"t{uuid.uuid4().hex[:12]}"
    root.sys.enable_secrets_engine("kv", path=mount, options={"version": "2"})
    yield root, {"ENVPLANE_SECRETS": "vault", "ENVPLANE_VAULT_MOUNT": mount, "VAULT_ADDR": addr,
                 "VAULT_TOKEN": token}
    root.sys.disable_secrets_engine(mount)


def vault_store(environ: dict[str, str]) -> SecretStore:
    return open_secret_store("vault", Path("."), environ, APP)


def test_vault_rm_keeps_a_key_written_between_read_and_write(
        tmp_path: Path, vault: tuple[hvac.Client, dict[str, str]], monkeypatch: pytest.MonkeyPatch) -> None:
    root, environ = vault
    spec = project(tmp_path)
    store = vault_store(environ)
    store.write(PATH, BEFORE)
    other = vault_store(environ)  # another process's client: Vault itself has no lock to wait on
    hook = once(lambda: other.write(PATH, {"NEW": Secret("written-meanwhile")}))
    read = KvV2.read_secret_version

    def read_then_write(self: KvV2, *args: Any, **kwargs: Any) -> Any:
        found = read(self, *args, **kwargs)
        hook()
        return found

    monkeypatch.setattr(KvV2, "read_secret_version", read_then_write)
    done = rm(spec, environ)
    monkeypatch.undo()
    assert done.exit_code == 0, done.output
    assert store.read(PATH) == {"KEPT": BEFORE["KEPT"], "NEW": Secret("written-meanwhile")}
    versions = root.secrets.kv.v2.read_secret_metadata(path=f"{APP}/staging/web", mount_point=environ[
        "ENVPLANE_VAULT_MOUNT"])["data"]["versions"]
    holding = [v for v, meta in versions.items() if not meta["destroyed"]
               and "GONE" in (root.secrets.kv.v2.read_secret_version(
                   path=f"{APP}/staging/web", version=int(v), mount_point=environ["ENVPLANE_VAULT_MOUNT"],
                   raise_on_deleted_version=False)["data"]["data"] or {})]
    assert holding == []  # no version still holds the removed value


def test_vault_rm_that_fails_changes_nothing(
        tmp_path: Path, vault: tuple[hvac.Client, dict[str, str]], monkeypatch: pytest.MonkeyPatch) -> None:
    _, environ = vault
    spec = project(tmp_path)
    store = vault_store(environ)
    store.write(PATH, BEFORE)

    def unreachable(self: KvV2, *args: Any, **kwargs: Any) -> Any:
        raise requests.exceptions.ConnectionError("the server went away")

    monkeypatch.setattr(KvV2, "create_or_update_secret", unreachable)
    done = rm(spec, environ)
    monkeypatch.undo()
    assert done.exit_code != 0
    assert "cannot reach Vault" in str(done.exception)
    assert store.read(PATH) == BEFORE


def test_vault_rm_of_the_last_key_lists_nothing(
        tmp_path: Path, vault: tuple[hvac.Client, dict[str, str]]) -> None:
    _, environ = vault
    spec = project(tmp_path)
    store = vault_store(environ)
    store.write(PATH, {"GONE": Secret("x")})
    assert rm(spec, environ).exit_code == 0
    assert store.read(PATH) == {}
    listed = CliRunner().invoke(cli_app, ["secrets", "list", "staging", "--json", "--spec", str(spec)], env=environ)
    assert listed.exit_code == 0 and listed.stdout.strip() == "[]"
    again = rm(spec, environ)
    # #10.10: removing what is not there is nothing to do (exit 0), said as such
    assert isinstance(again.exception, NothingToDo) and "no secret GONE" in again.exception.message

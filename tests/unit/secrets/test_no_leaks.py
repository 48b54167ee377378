"""No secret value in an error message, a hint, a repr or a log line, whatever fails."""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from pathlib import Path

import pytest

from envplane.backends.secrets import open_secret_store
from envplane.backends.secrets.file import DATA_FILE, KEY_ENV, KEY_FILE, FileSecretStore, new_key
from envplane.backends.secrets.sops import SopsConfig, SopsSecretStore
from envplane.backends.secrets.vault import VaultConfig, VaultSecretStore
from envplane.errors import EnvplaneError
from envplane.secret import Secret

VALUE = "hunter2-value-that-must-never-show"
PATH = "secret/data/finance-report/staging/backend"


def failures(tmp_path: Path) -> dict[str, Callable[[], object]]:
    """Each way a store can fail while VALUE is in play."""
    key = new_key().reveal()
    good = FileSecretStore.open(tmp_path / "good", {KEY_ENV: key})
    good.write(PATH, {"DB_PASSWORD": Secret(VALUE)})

    def wrong_key() -> object:
        return FileSecretStore.open(tmp_path / "good", {KEY_ENV: new_key().reveal()}).read(PATH)

    def open_key_file() -> object:
        FileSecretStore.open(tmp_path / "loose", {})
        os.chmod(tmp_path / "loose" / KEY_FILE, 0o644)
        return FileSecretStore.open(tmp_path / "loose", {})

    def corrupt() -> object:
        (tmp_path / "bad").mkdir()
        (tmp_path / "bad" / DATA_FILE).write_bytes(VALUE.encode())
        return FileSecretStore.open(tmp_path / "bad", {KEY_ENV: key}).read(PATH)

    def key_is_the_value() -> object:
        return FileSecretStore.open(tmp_path / "k", {KEY_ENV: VALUE})

    def plain_string() -> object:
        good.write(PATH, {"DB_PASSWORD": VALUE})  # type: ignore[dict-item]
        return None

    def vault_unreachable() -> object:
        config = VaultConfig(addr="http://127.0.0.1:9", token=Secret(VALUE), timeout=2)
        VaultSecretStore(config).write(PATH, {"DB_PASSWORD": Secret(VALUE)})
        return None

    def sops_missing() -> object:
        config = SopsConfig(tmp_path / "sops", ("age1x",), {}, binary=str(tmp_path / "no-sops"))
        SopsSecretStore(config).write(PATH, {"DB_PASSWORD": Secret(VALUE)})
        return None

    def sops_no_recipient() -> object:
        SopsSecretStore(SopsConfig(tmp_path / "sops", (), {})).write(PATH, {"DB_PASSWORD": Secret(VALUE)})
        return None

    return {f.__name__: f for f in [wrong_key, open_key_file, corrupt, key_is_the_value, plain_string,
                                    vault_unreachable, sops_missing, sops_no_recipient]}


def test_no_value_in_errors_or_repr(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    for name, fail in failures(tmp_path).items():
        with pytest.raises(EnvplaneError) as caught:
            fail()
        error = caught.value
        shown = f"{error} {error!r} {error.message} {error.hint} {[p.render() for p in error.problems]}"
        assert VALUE not in shown, name
        assert error.__cause__ is None or VALUE not in str(error.__cause__), name
    assert VALUE not in caplog.text


def test_returned_objects_print_masked(tmp_path: Path) -> None:
    environ = {KEY_ENV: new_key().reveal(), "VAULT_TOKEN": VALUE, "SOPS_AGE_RECIPIENTS": "age1x",
               "VAULT_SECRET_ID": VALUE}
    store = open_secret_store("file", tmp_path, environ)
    store.write(PATH, {"DB_PASSWORD": Secret(VALUE)})
    read = store.read(PATH)
    objects: list[object] = [
        read, read["DB_PASSWORD"], store, store.list("finance-report"),
        open_secret_store("vault", tmp_path, environ), VaultConfig.from_environ(environ),
        open_secret_store("sops", tmp_path, environ), SopsConfig.from_environ(tmp_path, environ),
    ]
    for thing in objects:
        for shown in (str(thing), repr(thing), f"{thing}", f"{thing!r}"):
            assert VALUE not in shown and environ[KEY_ENV] not in shown
    assert "***" in repr(read) and f"{read['DB_PASSWORD']}" == "***"

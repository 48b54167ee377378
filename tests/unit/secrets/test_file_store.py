"""The embedded file store: encrypted, merged, atomic, 0600, and keyed as DESIGN.md says."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from envplane.backends.secrets.file import DATA_FILE, KEY_ENV, FileSecretStore, key_path, new_key
from envplane.errors import BackendError
from envplane.secret import Secret

PR5 = "secret/data/finance-report/test-pr-5"
VALUE = "s3cr3t-Value-that-must-not-leak"


APP = "finance-report"


def config(folder: Path) -> dict[str, str]:
    """A config home of the test's own, beside its store folder: the app's key goes there."""
    return {"XDG_CONFIG_HOME": str(folder.parent / f"{folder.name}.config")}


def open_store(folder: Path, **environ: str) -> FileSecretStore:
    return FileSecretStore.open(folder, {**config(folder), **environ}, APP)


def key_file(folder: Path) -> Path:
    return key_path(APP, config(folder))


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_round_trip(tmp_path: Path) -> None:
    store = open_store(tmp_path)
    store.write(f"{PR5}/backend", {"DB_PASSWORD": Secret(VALUE)})
    again = open_store(tmp_path)
    assert again.read(f"{PR5}/backend") == {"DB_PASSWORD": Secret(VALUE)}
    assert again.read("finance-report/test-pr-5/backend")["DB_PASSWORD"].reveal() == VALUE


def test_read_absent_is_empty(tmp_path: Path) -> None:
    assert open_store(tmp_path).read(f"{PR5}/backend") == {}
    assert not (tmp_path / DATA_FILE).exists()


def test_write_merges_keys(tmp_path: Path) -> None:
    store = open_store(tmp_path)
    store.write(f"{PR5}/backend", {"A": Secret("1"), "B": Secret("2")})
    store.write(f"{PR5}/backend", {"B": Secret("3"), "C": Secret("4")})
    assert store.read(f"{PR5}/backend") == {"A": Secret("1"), "B": Secret("3"), "C": Secret("4")}


def test_write_refuses_plain_strings(tmp_path: Path) -> None:
    from envplane.errors import UsageError

    with pytest.raises(UsageError):
        open_store(tmp_path).write(f"{PR5}/backend", {"A": VALUE})  # type: ignore[dict-item]


def test_delete_is_idempotent(tmp_path: Path) -> None:
    store = open_store(tmp_path)
    store.write(f"{PR5}/backend", {"A": Secret("1")})
    store.delete(f"{PR5}/backend")
    store.delete(f"{PR5}/backend")
    assert store.read(f"{PR5}/backend") == {}


def test_list_and_delete_tree_by_whole_segments(tmp_path: Path) -> None:
    store = open_store(tmp_path)
    for path in [f"{PR5}/backend", f"{PR5}/worker", "finance-report/test-pr-50/backend",
                 "finance-report/staging/backend"]:
        store.write(path, {"A": Secret("1")})
    assert store.list(PR5) == [f"{PR5}/backend", f"{PR5}/worker"]
    assert store.list("finance-report/test-pr-5/") == [f"{PR5}/backend", f"{PR5}/worker"]
    assert len(store.list("secret/data/finance-report")) == 4
    assert store.delete_tree(PR5) == 2
    assert store.delete_tree(PR5) == 0
    assert store.list("finance-report") == [
        "secret/data/finance-report/staging/backend",
        "secret/data/finance-report/test-pr-50/backend",
    ]


@pytest.mark.parametrize("bad", ["", "secret/data/", "a/../b", "a//b", "a/b c"])
def test_odd_paths_are_refused(tmp_path: Path, bad: str) -> None:
    from envplane.errors import UsageError

    with pytest.raises(UsageError):
        open_store(tmp_path).list(bad)


def test_key_file_is_created_0600_and_reused(tmp_path: Path) -> None:
    open_store(tmp_path).write(f"{PR5}/backend", {"A": Secret(VALUE)})
    assert mode(key_file(tmp_path)) == 0o600
    assert mode(key_file(tmp_path).parent) == 0o700
    assert mode(tmp_path / DATA_FILE) == 0o600
    assert open_store(tmp_path).read(f"{PR5}/backend") == {"A": Secret(VALUE)}


def test_key_file_readable_by_others_is_refused(tmp_path: Path) -> None:
    open_store(tmp_path)
    os.chmod(key_file(tmp_path), 0o644)
    with pytest.raises(BackendError) as caught:
        open_store(tmp_path)
    assert "readable by others" in caught.value.message
    assert caught.value.hint == f"chmod 600 {key_file(tmp_path)}"


def test_key_from_environment_needs_no_key_file(tmp_path: Path) -> None:
    key = new_key().reveal()
    open_store(tmp_path, **{KEY_ENV: key}).write(f"{PR5}/backend", {"A": Secret(VALUE)})
    assert not key_file(tmp_path).exists()
    assert open_store(tmp_path, **{KEY_ENV: key}).read(f"{PR5}/backend") == {"A": Secret(VALUE)}


def test_malformed_key_in_environment(tmp_path: Path) -> None:
    with pytest.raises(BackendError) as caught:
        open_store(tmp_path, **{KEY_ENV: "c2hvcnQ="})
    assert "base64 of 32 bytes" in caught.value.hint
    assert "c2hvcnQ=" not in caught.value.message + caught.value.hint


def test_wrong_key(tmp_path: Path) -> None:
    open_store(tmp_path, **{KEY_ENV: new_key().reveal()}).write(f"{PR5}/backend", {"A": Secret(VALUE)})
    with pytest.raises(BackendError) as caught:
        open_store(tmp_path, **{KEY_ENV: new_key().reveal()}).read(f"{PR5}/backend")
    assert "cannot decrypt" in caught.value.message
    assert f"wrong {KEY_ENV}?" in caught.value.message
    assert VALUE not in str(caught.value) + caught.value.hint


def test_rotate_key_with_environment_key(tmp_path: Path) -> None:
    old, new = new_key(), new_key()
    store = open_store(tmp_path, **{KEY_ENV: old.reveal()})
    store.write(f"{PR5}/backend", {"A": Secret(VALUE)})
    store.rotate_key(new)
    assert store.read(f"{PR5}/backend") == {"A": Secret(VALUE)}
    assert open_store(tmp_path, **{KEY_ENV: new.reveal()}).read(f"{PR5}/backend") == {"A": Secret(VALUE)}
    with pytest.raises(BackendError, match="cannot decrypt"):
        open_store(tmp_path, **{KEY_ENV: old.reveal()}).read(f"{PR5}/backend")


def test_rotate_key_with_key_file_replaces_the_file(tmp_path: Path) -> None:
    store = open_store(tmp_path)
    store.write(f"{PR5}/backend", {"A": Secret(VALUE)})
    old = key_file(tmp_path).read_text().strip()
    new = new_key()
    store.rotate_key(new)
    assert key_file(tmp_path).read_text().strip() == new.reveal()
    assert mode(key_file(tmp_path)) == 0o600
    assert sorted(p.name for p in key_file(tmp_path).parent.iterdir()) == [".gitignore", f"{APP}.key"]
    assert open_store(tmp_path).read(f"{PR5}/backend") == {"A": Secret(VALUE)}
    with pytest.raises(BackendError, match="cannot decrypt"):
        open_store(tmp_path, **{KEY_ENV: old}).read(f"{PR5}/backend")


def test_file_is_not_plaintext(tmp_path: Path) -> None:
    store = open_store(tmp_path)
    store.write(f"{PR5}/backend", {"DB_PASSWORD": Secret(VALUE)})
    blob = (tmp_path / DATA_FILE).read_bytes()
    for plain in [VALUE, "DB_PASSWORD", "finance-report"]:
        assert plain.encode() not in blob


def test_each_write_draws_a_new_nonce(tmp_path: Path) -> None:
    store = open_store(tmp_path)
    store.write(f"{PR5}/backend", {"A": Secret(VALUE)})
    first = (tmp_path / DATA_FILE).read_bytes()
    store.write(f"{PR5}/backend", {"A": Secret(VALUE)})
    assert (tmp_path / DATA_FILE).read_bytes() != first


def test_no_temp_files_left(tmp_path: Path) -> None:
    store = open_store(tmp_path)
    for n in range(3):
        store.write(f"{PR5}/backend", {"A": Secret(str(n))})
    assert sorted(p.name for p in tmp_path.iterdir()) == [DATA_FILE, "secrets.lock"]


def test_not_a_store(tmp_path: Path) -> None:
    (tmp_path / DATA_FILE).write_bytes(b"hello")
    with pytest.raises(BackendError, match="is not an envplane secret store"):
        open_store(tmp_path).read(f"{PR5}/backend")

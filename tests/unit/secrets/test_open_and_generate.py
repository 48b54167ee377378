"""Choosing a store, generating passwords, and knowing which ones an instance needs."""

from __future__ import annotations

from pathlib import Path

import pytest

from envplane.backends.secrets import open_secret_store
from envplane.backends.secrets.file import FileSecretStore
from envplane.backends.secrets.generate import ensure, needed, new_password
from envplane.backends.secrets.sops import SopsSecretStore
from envplane.backends.secrets.vault import VaultSecretStore
from envplane.errors import UsageError
from envplane.secret import Secret

PREFIX = "secret/data/finance-report/test-pr-5"


def test_file_is_the_default(tmp_path: Path) -> None:
    store = open_secret_store(None, tmp_path, {}, "finance-report")
    assert isinstance(store, FileSecretStore)
    assert store.file == tmp_path / ".envplane" / "secrets.enc"


def test_kind_from_spec_wins_over_environment(tmp_path: Path) -> None:
    environ = {"ENVPLANE_SECRETS": "vault", "VAULT_TOKEN": "t"}
    assert isinstance(open_secret_store(None, tmp_path, environ, "finance-report"), VaultSecretStore)
    assert isinstance(open_secret_store("file", tmp_path, environ, "finance-report"), FileSecretStore)


def test_sops_folder(tmp_path: Path) -> None:
    store = open_secret_store("sops", tmp_path, {"SOPS_AGE_RECIPIENTS": "age1abc"}, "finance-report")
    assert isinstance(store, SopsSecretStore)
    assert store.config.folder == tmp_path / "secrets"
    assert store.config.recipients == ("age1abc",)
    moved = open_secret_store("sops", tmp_path, {"ENVPLANE_SOPS_DIR": str(tmp_path / "x")}, "finance-report")
    assert isinstance(moved, SopsSecretStore) and moved.config.folder == tmp_path / "x"


def test_sops_recipient_from_key_file(tmp_path: Path) -> None:
    key = tmp_path / "age.txt"
    key.write_text("# created: 2024\n# public key: age1pub\nAGE-SECRET-KEY-1XYZ\n")
    store = open_secret_store("sops", tmp_path, {"SOPS_AGE_KEY_FILE": str(key)}, "finance-report")
    assert isinstance(store, SopsSecretStore) and store.config.recipients == ("age1pub",)


def test_unknown_kind_lists_the_kinds(tmp_path: Path) -> None:
    with pytest.raises(UsageError) as caught:
        open_secret_store("infisical", tmp_path, {}, "finance-report")
    assert "'infisical'" in caught.value.message
    assert caught.value.hint == "use one of: file, vault, sops"


def test_vault_needs_credentials(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="no Vault credentials"):
        open_secret_store("vault", tmp_path, {"VAULT_ROLE_ID": "r"}, "finance-report")


def test_new_password() -> None:
    one, two = new_password(), new_password()
    assert len(one.reveal()) == 32 and one != two
    assert len(new_password(48).reveal()) == 48
    assert str(one) == "***"
    with pytest.raises(ValueError):
        new_password(8)


def test_needed_by_uses() -> None:
    assert needed(PREFIX, []) == []
    assert needed("finance-report/test-pr-5", ["redis", "postgres", "postgres"]) == [
        (f"{PREFIX}/postgres", "password"),
        (f"{PREFIX}/redis", "password"),
    ]
    assert needed(PREFIX, ["s3"]) == [
        (f"{PREFIX}/s3", "access_key_id"),
        (f"{PREFIX}/s3", "secret_access_key"),
    ]


def test_ensure_creates_only_what_is_missing(tmp_path: Path) -> None:
    store = open_secret_store("file", tmp_path, {}, "finance-report")
    store.write(f"{PREFIX}/postgres", {"password": Secret("kept")})
    wanted = needed(PREFIX, ["postgres", "redis"])
    assert ensure(store, wanted) == [(f"{PREFIX}/redis", "password")]
    assert ensure(store, wanted) == []
    assert store.read(f"{PREFIX}/postgres") == {"password": Secret("kept")}
    assert len(store.read(f"{PREFIX}/redis")["password"].reveal()) == 32

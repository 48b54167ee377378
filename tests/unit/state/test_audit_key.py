"""The audit key lives outside the state store: in ENVPLANE_AUDIT_KEY or a 0600 file of
~/.config/envplane/keys, created on first use and never printed."""

from __future__ import annotations

import base64
import stat
from pathlib import Path

import pytest

from envplane.errors import BackendError, StateError
from envplane.state import audit_key


def test_the_first_use_creates_a_private_key_file_outside_the_project(tmp_path: Path) -> None:
    environ = {"XDG_CONFIG_HOME": str(tmp_path / "config")}
    key = audit_key.for_app("shop", environ)
    path = tmp_path / "config" / "envplane" / "keys" / "audit-shop.key"
    assert key.source == str(path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert audit_key.for_app("shop", environ) == key  # the same key every time
    assert audit_key.for_app("other", environ).id != key.id  # one key per app
    assert base64.b64encode(key.raw).decode() not in repr(key)


def test_envplane_audit_key_wins_and_writes_no_file(tmp_path: Path) -> None:
    given = base64.b64encode(b"x" * 32).decode()
    key = audit_key.for_app("shop", {"ENVPLANE_AUDIT_KEY": given, "XDG_CONFIG_HOME": str(tmp_path)})
    assert (key.raw, key.source) == (b"x" * 32, "ENVPLANE_AUDIT_KEY")
    assert list(tmp_path.iterdir()) == []


def test_a_key_that_is_not_32_bytes_of_base64_is_refused_without_echoing_it() -> None:
    with pytest.raises(StateError, match="ENVPLANE_AUDIT_KEY is not an audit key") as caught:
        audit_key.for_app("shop", {"ENVPLANE_AUDIT_KEY": "hunter2"})
    assert "hunter2" not in caught.value.message + caught.value.hint


def test_a_key_file_others_can_read_is_refused(tmp_path: Path) -> None:
    environ = {"XDG_CONFIG_HOME": str(tmp_path)}
    key = audit_key.for_app("shop", environ)
    Path(key.source).chmod(0o644)
    with pytest.raises(BackendError, match="readable by others") as caught:
        audit_key.for_app("shop", environ)
    assert caught.value.hint == f"chmod 600 {key.source}"

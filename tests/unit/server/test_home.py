"""Where the server keeps its state: its own SQLite file, or ENVPLANE_STATE_URL."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from envplane.errors import UsageError
from envplane.server import auth
from envplane.server.home import open_server_store, server_home
from tests.unit.state.stores import fresh_postgres_database


def test_the_home_is_named_by_the_variable_else_xdg_data_home_else_local_share(tmp_path: Path):
    assert server_home({"ENVPLANE_SERVER_HOME": str(tmp_path)}) == tmp_path
    assert server_home({"XDG_DATA_HOME": str(tmp_path)}) == tmp_path / "envplane"
    assert server_home({"XDG_DATA_HOME": "relative"}) == Path.home() / ".local" / "share" / "envplane"
    assert server_home({}) == Path.home() / ".local" / "share" / "envplane"


def test_a_relative_home_is_refused():
    with pytest.raises(UsageError, match="ENVPLANE_SERVER_HOME must be an absolute path"):
        server_home({"ENVPLANE_SERVER_HOME": "srv"})


def test_the_default_store_is_a_private_sqlite_file_in_the_home(tmp_path: Path):
    home = tmp_path / "home"
    environ = {"ENVPLANE_SERVER_HOME": str(home), "ENVPLANE_AUDIT_KEY": "a" * 43 + "="}
    store = open_server_store(environ)
    try:
        assert store.dialect == "sqlite" and store.where == str(home / "server.db")
        auth.create_token(store, "ci", ["read"])
        assert stat.S_IMODE(home.stat().st_mode) == 0o700
        assert stat.S_IMODE((home / "server.db").stat().st_mode) == 0o600
    finally:
        store.close()
    again = open_server_store(environ)
    assert [t.name for t in auth.list_tokens(again)] == ["ci"]
    again.close()


@pytest.mark.integration
def test_with_a_state_url_the_server_uses_that_database(tmp_path: Path):
    with fresh_postgres_database() as url:
        environ = {"ENVPLANE_SERVER_HOME": str(tmp_path / "home"), "ENVPLANE_STATE_URL": url,
                   "ENVPLANE_AUDIT_KEY": "a" * 43 + "="}
        store = open_server_store(environ)
        try:
            assert store.dialect == "postgresql"
            auth.create_token(store, "ci", ["read"])
        finally:
            store.close()
        assert not (tmp_path / "home" / "server.db").exists()

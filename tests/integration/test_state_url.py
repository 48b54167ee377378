"""ENVPLANE_STATE_URL puts the state in PostgreSQL: the CLI writes and verifies it there."""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from psycopg import sql

from tests.support import busybox_app, cli, docker_engine, ensure_busybox_image, free_port_block, need


@pytest.fixture()
def state_url() -> Iterator[str]:
    admin = os.environ.get("ENVPLANE_TEST_POSTGRES_URL", "")
    need("PostgreSQL", bool(admin), "eval the export line of scripts/services/postgres.sh")
    name = f"envplane_state_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    yield admin.rsplit("/", 1)[0] + "/" + name
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP DATABASE {} WITH (FORCE)").format(sql.Identifier(name)))


def test_state_and_audit_live_in_postgresql(state_url: str, tmp_path: Path) -> None:
    need("a Docker engine", docker_engine(), "run scripts/services/docker.sh")
    ensure_busybox_image()
    busybox_app(tmp_path, f"st{uuid.uuid4().hex[:6]}", free_port_block())
    env = {"ENVPLANE_STATE_URL": state_url, "DATA_PATH": "", "ENVPLANE_USER": "bob"}
    try:
        assert cli("up", "test", "--pr", "1", cwd=tmp_path, env=env).returncode == 0
    finally:
        assert cli("down", "test", "--pr", "1", "--purge", cwd=tmp_path, env=env).returncode == 0
    assert not (tmp_path / ".envplane" / "state.db").exists()  # nothing went to SQLite
    rows = json.loads(cli("audit", "log", "--json", cwd=tmp_path, env=env).stdout)
    assert [(r["actor"], r["action"]) for r in rows] == [("bob", "up"), ("bob", "purge")]
    assert cli("audit", "verify", cwd=tmp_path, env=env).returncode == 0
    with psycopg.connect(state_url) as conn:
        conn.execute("UPDATE audit_log SET outcome = 'failed' WHERE id = 1")
    broken = cli("audit", "verify", "--json", cwd=tmp_path, env=env)
    assert broken.returncode == 1
    assert "row 1" in json.dumps(json.loads(broken.stdout)["problems"])

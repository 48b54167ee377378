"""A purge never forgets what it could not drop (issue 9, item 9).

Servers that are not configured, or configured but not answering (a closed port on this
machine: a real refused connection), make the resource `kept`; the instance's secrets stay
so a later purge can still drop it.
"""

from __future__ import annotations

from pathlib import Path

from envplane.backends.secrets import open_secret_store
from envplane.provision import Provisioner, Servers
from envplane.secret import Secret
from envplane.spec.load import load_project
from envplane.target import Target, resolve
from tests.support import free_port_block


def target(folder: Path) -> Target:
    (folder / "compose.yaml").write_text("services:\n  web: {image: busybox}\n")
    (folder / "envplane.yaml").write_text(
        "app: shop\ndomain: example.com\ncompose: compose.yaml\n"
        "services:\n  web: {uses: [postgres, redis]}\nresources:\n  postgres: {}\n  redis: {}\n")
    return resolve(load_project(folder / "envplane.yaml", {}), "test", 5)


def test_a_resource_whose_server_is_not_configured_is_kept_with_its_secrets(tmp_path: Path) -> None:
    t = target(tmp_path)
    store = open_secret_store("file", tmp_path, {}, "shop")
    made = Provisioner(t, Servers(), store, tmp_path)
    made.password("postgres"), made.password("redis")
    kept = Provisioner(t, Servers(), store, tmp_path).purge()
    assert [k.split(":")[0] for k in kept] == ["postgres", "redis"]
    assert "needs PostgreSQL, and none is configured" in kept[0]
    assert store.read(f"{t.secrets_prefix}/postgres")["password"]  # still there for the next try
    assert store.read(f"{t.secrets_prefix}/redis")["password"]


def test_a_resource_whose_server_does_not_answer_is_kept(tmp_path: Path) -> None:
    t = target(tmp_path)
    store = open_secret_store("file", tmp_path, {}, "shop")
    Provisioner(t, Servers(), store, tmp_path).password("postgres")
    closed = free_port_block(1)  # nothing listens there
    down = Servers(postgres_url=Secret(f"postgresql://admin:pw@127.0.0.1:{closed}/postgres"),
                   redis_url=Secret(f"redis://default:pw@127.0.0.1:{closed}/0"))
    kept = Provisioner(t, down, store, tmp_path).purge()
    assert [k.split(":")[0] for k in kept] == ["postgres", "redis"]
    assert all("pw" not in k for k in kept)  # the admin password never reaches the report
    assert store.read(f"{t.secrets_prefix}/postgres")["password"]

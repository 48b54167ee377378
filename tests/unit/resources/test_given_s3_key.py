"""#9.3: on servers whose IAM envplane does not drive (AWS, R2, MinIO), an env names a key
the user made for its bucket (servers.s3_app_access_key/s3_app_secret_key); containers get
that key, never the admin key, and only an env of one instance may do so."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import pytest

from envplane.errors import UsageError
from envplane.provision import Provisioner, Servers
from envplane.secret import Secret
from envplane.spec.load import load_project
from envplane.target import resolve

SPEC = """\
app: shop
domain: example.com
compose: compose.yaml
services:
  web: {uses: [s3]}
resources:
  s3: {}
environments:
  production:
    servers: {s3_app_access_key: PROD_APP_KEY, s3_app_secret_key: PROD_APP_SECRET}
  test:
    servers: {s3_app_access_key: PROD_APP_KEY, s3_app_secret_key: PROD_APP_SECRET}
"""
ENVIRON = {"ENVPLANE_S3_ENDPOINT": "https://r2.example.com", "ENVPLANE_S3_ACCESS_KEY": "admin-key",
           "ENVPLANE_S3_SECRET_KEY": "admin-secret", "PROD_APP_KEY": "app-key", "PROD_APP_SECRET": "app-secret"}


class Store:
    """An in-memory secret store (the store is not what these tests are about)."""

    def __init__(self) -> None:
        self.data: dict[str, dict[str, Secret]] = {}

    def read(self, path: str) -> dict[str, Secret]:
        return dict(self.data.get(path, {}))

    def write(self, path: str, values: Mapping[str, Secret]) -> None:
        self.data.setdefault(path, {}).update(values)

    def delete(self, path: str) -> None:
        self.data.pop(path, None)

    def list(self, prefix: str) -> list[str]:
        return sorted(p for p in self.data if p.startswith(prefix))

    def delete_tree(self, prefix: str) -> int:
        gone = self.list(prefix)
        for path in gone:
            del self.data[path]
        return len(gone)


def provisioner(tmp_path: Path, env: str, environ: Mapping[str, str] = ENVIRON,
                pr: int | None = None) -> Provisioner:
    (tmp_path / "compose.yaml").write_text("services:\n  web: {image: nginx}\n")
    (tmp_path / "envplane.yaml").write_text(SPEC)
    target = resolve(load_project(tmp_path / "envplane.yaml", {}), env, pr)
    return Provisioner(target, Servers.for_target(target, environ), Store(), tmp_path)


def test_containers_get_the_given_key_and_envplane_makes_none(tmp_path: Path) -> None:
    p = provisioner(tmp_path, "production")
    p.s3_key()  # no server is called: nothing to make
    assert [str(c) for c in p.changes] == [
        "noop S3 key of shop-production: given by the env's servers: s3_app_access_key (envplane makes none)"]
    out = p.variables(p.target.service("web"))
    assert out["S3_ACCESS_KEY_ID"] == "app-key"
    assert isinstance(out["S3_SECRET_ACCESS_KEY"], Secret)
    assert out["S3_SECRET_ACCESS_KEY"].reveal() == "app-secret"
    assert "admin" not in repr(out)


def test_a_given_key_is_refused_for_an_env_of_many_instances(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="one given S3 key would reach every instance's bucket"):
        provisioner(tmp_path, "test", pr=5).s3_key()


def test_the_admin_key_is_never_given_to_containers(tmp_path: Path) -> None:
    same = {**ENVIRON, "PROD_APP_KEY": "admin-key"}
    with pytest.raises(UsageError, match="gives its containers the admin S3 key"):
        provisioner(tmp_path, "production", same).s3_key()


def test_half_a_key_is_refused(tmp_path: Path) -> None:
    half = {k: v for k, v in ENVIRON.items() if k != "PROD_APP_SECRET"}
    with pytest.raises(UsageError, match="names only half of its S3 key"):
        provisioner(tmp_path, "production", half).s3_key()


def test_without_a_given_key_a_container_never_falls_back_to_the_admin_key(tmp_path: Path) -> None:
    p = provisioner(tmp_path, "staging")  # no key made yet (no server here)
    with pytest.raises(Exception, match="has no S3 key of its own yet"):
        p.variables(p.target.service("web"))

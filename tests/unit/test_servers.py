"""Which server an env provisions on: the spec names variables per env, never their values."""

from __future__ import annotations

from pathlib import Path

import pytest

from envplane.errors import SpecError
from envplane.provision import Servers, store_kind
from envplane.spec.load import load_project
from envplane.target import resolve

SPEC = """\
app: shop
domain: example.com
compose: compose.yaml
secret_store: vault
environments:
  production:
    servers: {postgres: PROD_POSTGRES_URL, redis: PROD_REDIS_URL}
"""
ENVIRON = {"ENVPLANE_POSTGRES_URL": "postgresql://a@shared/x", "PROD_POSTGRES_URL": "postgresql://a@prod/x",
           "ENVPLANE_REDIS_URL": "redis://shared", "PROD_REDIS_URL": "redis://prod"}


def project(tmp_path: Path, spec: str = SPEC):  # type: ignore[no-untyped-def]
    (tmp_path / "compose.yaml").write_text("services:\n  web: {image: nginx}\n")
    (tmp_path / "envplane.yaml").write_text(spec)
    return load_project(tmp_path / "envplane.yaml", {})


def test_an_env_reads_the_variables_its_spec_names(tmp_path: Path) -> None:
    p = project(tmp_path)
    prod = Servers.for_target(resolve(p, "production"), ENVIRON)
    staging = Servers.for_target(resolve(p, "staging"), ENVIRON)
    assert prod.postgres_url is not None and prod.postgres_url.reveal() == "postgresql://a@prod/x"
    assert prod.redis_url is not None and prod.redis_url.reveal() == "redis://prod"
    assert staging.postgres_url is not None and staging.postgres_url.reveal() == "postgresql://a@shared/x"
    assert "prod" not in repr(prod)  # the URLs are Secrets


def test_a_value_in_place_of_a_variable_name_is_refused(tmp_path: Path) -> None:
    bad = SPEC.replace("PROD_POSTGRES_URL", "postgresql://u:pw@db/x")
    with pytest.raises(SpecError) as info:
        project(tmp_path, bad)
    assert "must name the variable (e.g. PROD_POSTGRES_URL), not its value" in str(info.value)
    assert "pw@" not in str(info.value)
    assert "envplane.yaml:7" in str(info.value)


def test_the_spec_chooses_the_secret_store_and_the_environment_overrides(tmp_path: Path) -> None:
    target = resolve(project(tmp_path), "staging")
    assert store_kind(target, {}) == "vault"
    assert store_kind(target, {"ENVPLANE_SECRETS": "sops"}) == "sops"

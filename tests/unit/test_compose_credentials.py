"""A Compose file cannot read envplane's credentials from the shell or `.env` (#9: the
admin keys never reach a container). A PR's Compose file is the PR author's: with
`${ENVPLANE_S3_SECRET_KEY}` in it, the admin S3 key was rendered into its preview."""

from __future__ import annotations

from pathlib import Path

from envplane.checkouts import head_project
from envplane.compose.render import render
from envplane.spec.load import load_project
from envplane.target import Target, resolve

COMPOSE = """\
services:
  web:
    image: busybox:stable
    environment:
      ADMIN_S3: "${ENVPLANE_S3_SECRET_KEY}"
      ADMIN_PG: "${ENVPLANE_POSTGRES_URL:-none}"
      STATE: "${ENVPLANE_STATE_URL}"
      VAULT: "${VAULT_TOKEN}"
      PROD: "${PROD_POSTGRES_URL}"
      OWN: "${GREETING}"
"""
SPEC = """\
app: shop
domain: example.com
compose: compose.yaml
environments:
  production:
    servers: {postgres: PROD_POSTGRES_URL}
"""
ENVIRON = {"ENVPLANE_S3_SECRET_KEY": "admin-s3-secret", "ENVPLANE_POSTGRES_URL": "postgresql://admin:pw@db/x",
           "ENVPLANE_STATE_URL": "postgresql://state:pw@db/s", "VAULT_TOKEN": "hvs.root",
           "PROD_POSTGRES_URL": "postgresql://prod:pw@db/p", "GREETING": "hello"}


def app(folder: Path, spec: str = SPEC) -> Path:
    folder.mkdir(parents=True)
    (folder / "compose.yaml").write_text(COMPOSE)
    (folder / "envplane.yaml").write_text(spec)
    return folder / "envplane.yaml"


def environment(target: Target) -> dict[str, str]:
    """What the rendered Compose file gives the container."""
    return dict(render(target, Path("/srv/shop"))["services"]["web"]["environment"])


def test_a_compose_file_reads_none_of_envplane_s_credentials(tmp_path: Path) -> None:
    target = resolve(load_project(app(tmp_path / "shop"), ENVIRON), "test", 5)
    seen = environment(target)
    assert (seen["ADMIN_S3"], seen["ADMIN_PG"], seen["STATE"], seen["VAULT"], seen["PROD"]) == ("", "none", "", "", "")
    assert seen["OWN"] == "hello"  # the shell's other variables are the user's to pass on
    assert any("ENVPLANE_S3_SECRET_KEY" in w and "envplane's" in w for w in target.warnings)


def test_nor_from_dotenv(tmp_path: Path) -> None:
    spec = app(tmp_path / "shop")
    (spec.parent / ".env").write_text("ENVPLANE_S3_SECRET_KEY=admin-s3-secret\nGREETING=hi\n")
    seen = environment(resolve(load_project(spec, {}), "test", 5))
    assert (seen["ADMIN_S3"], seen["OWN"]) == ("", "hi")


def test_a_pr_cannot_unhide_the_server_s_credentials_by_dropping_them_from_its_spec(tmp_path: Path) -> None:
    server = load_project(app(tmp_path / "server"), ENVIRON)
    head = head_project(server, app(tmp_path / "tree", spec=SPEC.split("environments:")[0]))
    assert environment(resolve(head, "test", 5))["PROD"] == ""

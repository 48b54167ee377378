"""The CLI as a user runs it: envs, plan, render, init, errors, exit codes, no writes."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support import compose_v2, need

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "finance-report"
ENVPLANE = [sys.executable, "-m", "envplane"]


def envplane(*args: str, cwd: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*ENVPLANE, *args], cwd=cwd, capture_output=True, text=True, timeout=120,
        env={**os.environ, **(env or {})},
    )


@pytest.fixture()
def app(tmp_path: Path) -> Path:
    """A copy of the example app, so nothing a test does lands in the repository."""
    dest = tmp_path / "finance-report"
    shutil.copytree(EXAMPLE, dest)
    return dest


def files_of(folder: Path) -> set[Path]:
    return {p for p in folder.rglob("*")}


def test_envs_prints_the_ladder(app: Path) -> None:
    done = envplane("envs", cwd=app)
    assert done.returncode == 0, done.stderr
    for word in ("local", "docker", "ci", "test", "staging", "production", "dr",
                 "report-pr-123.example.com", "/data/finance-report/staging"):
        assert word in done.stdout


def test_envs_json(app: Path) -> None:
    done = envplane("envs", "--json", cwd=app)
    rows = {r["env"]: r for r in json.loads(done.stdout)}
    assert rows["staging"]["domain"] == "report-staging.example.com"
    assert rows["test"]["suffix"] == "-pr-123"
    assert rows["production"]["suffix"] == ""


def test_plan_json_lists_target_and_steps(app: Path) -> None:
    done = envplane("plan", "staging", "--json", cwd=app)
    assert done.returncode == 0, done.stderr
    plan = json.loads(done.stdout)
    assert plan["target"]["project"] == "finance-report-staging"
    kinds = [s["kind"] for s in plan["steps"]]
    assert kinds[:2] == ["lock", "isolation"]  # the pre-flight checks under the lock
    assert "start" in kinds and kinds[-1] == "record"


def test_deploy_env_is_the_default_env(app: Path) -> None:
    done = envplane("plan", "--json", cwd=app, env={"DEPLOY_ENV": "test", "PR_NUMBER": "9"})
    assert json.loads(done.stdout)["target"]["instance"] == "pr-9"


def test_read_commands_write_nothing(app: Path) -> None:
    before = files_of(app)
    for args in (["envs"], ["plan", "staging"], ["plan", "test", "--pr", "4", "--json"],
                 ["render", "production"]):
        assert envplane(*args, cwd=app).returncode == 0
    assert files_of(app) == before


def test_render_to_a_file_passes_compose_config(app: Path, tmp_path: Path) -> None:
    need("docker compose v2", compose_v2(), "run scripts/services/docker.sh")
    out = tmp_path / "pr7.yaml"
    done = envplane("render", "test", "--pr", "7", "-o", str(out), cwd=app)
    assert done.returncode == 0, done.stderr
    check = subprocess.run(["docker", "compose", "-f", str(out), "config", "-q"],
                           capture_output=True, text=True, cwd=tmp_path)
    assert check.returncode == 0, check.stderr
    text = out.read_text()
    assert "report-pr-7.example.com" in text
    assert "finance-report-pr-7" in text
    assert out.stat().st_mode & 0o777 == 0o600  # only the owner reads it (#9.4)


def test_bad_spec_exits_2_with_file_line_and_hint(app: Path) -> None:
    spec = app / "envplane.yaml"
    spec.write_text(spec.read_text() + "environmnets: {}\n")
    done = envplane("plan", "staging", cwd=app)
    assert done.returncode == 2
    assert "environmnets: unknown key" in done.stderr
    assert "envplane.yaml:" in done.stderr
    assert "did you mean `environments`?" in done.stderr
    assert "Traceback" not in done.stderr


def test_bad_spec_json_error(app: Path) -> None:
    spec = app / "envplane.yaml"
    spec.write_text(spec.read_text() + "environmnets: {}\n")
    done = envplane("plan", "staging", "--json", cwd=app)
    assert done.returncode == 2
    problem = json.loads(done.stdout)["error"]["problems"][0]
    assert problem["field"] == "environmnets" and problem["line"] > 1


def test_unknown_env_exits_2(app: Path) -> None:
    done = envplane("plan", "qa", cwd=app)
    assert done.returncode == 2
    assert "unknown environment 'qa'" in done.stderr


def test_missing_required_variable_names_compose_line(app: Path) -> None:
    compose = app / "compose.yaml"
    compose.write_text(compose.read_text().replace("build: ./frontend", "build: ./frontend\n    image: ${FRONTEND_IMAGE?set the image}"))
    done = envplane("plan", "staging", cwd=app)
    assert done.returncode == 2
    assert "FRONTEND_IMAGE" in done.stderr and "compose.yaml:" in done.stderr


def test_a_value_of_the_wrong_type_is_exit_2_with_file_line_and_field(tmp_path: Path) -> None:
    """#9.21: `volumes: data` crashed `_scoped` with AttributeError (exit 1, internal error)."""
    (tmp_path / "compose.yaml").write_text("services:\n  web:\n    image: nginx\nvolumes: data\n")
    (tmp_path / "envplane.yaml").write_text("app: shop\ndomain: example.com\ncompose: compose.yaml\n")
    for command in ("plan", "render"):
        done = envplane(command, "staging", cwd=tmp_path)
        assert done.returncode == 2, done.stderr
        assert "error: volumes: must be a mapping (" in done.stderr and "compose.yaml:4)" in done.stderr
        assert "internal error" not in done.stderr and "Traceback" not in done.stderr


def test_init_writes_a_spec_from_compose_without_asking(tmp_path: Path) -> None:
    (tmp_path / "compose.yaml").write_text(
        "services:\n  web:\n    image: nginx\n    ports: ['8080:80']\n"
        "  db:\n    image: postgres:16\n    ports: ['5432:5432']\n"
    )
    done = envplane("init", "--app", "shop", "--domain", "shop.dev", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    spec = (tmp_path / "envplane.yaml").read_text()
    assert "app: shop" in spec and "public: {port: 80, path: /}" in spec
    assert "\n  db:" not in spec  # a data store is not public
    assert "is a data store" in done.stderr or "not public" in done.stderr
    again = envplane("init", "--app", "shop", "--domain", "shop.dev", cwd=tmp_path)
    assert again.returncode == 2 and "--force" in again.stderr
    assert envplane("plan", "staging", cwd=tmp_path).returncode == 0


def test_init_in_a_folder_whose_name_is_not_an_app_name_suggests_one(tmp_path: Path) -> None:
    """#9.20: a folder like pihole-cloudflared-DoH, and a Compose file that needs a shell
    variable, as `docker compose config` accepts them."""
    folder = tmp_path / "pihole-cloudflared-DoH"
    folder.mkdir()
    (folder / "compose.yaml").write_text(
        "services:\n  pihole:\n    image: pihole/pihole\n    ports: ['8053:80']\n"
        "    volumes: ['${PIHOLE_DATA:?set it}/etc:/etc/pihole']\n")
    done = envplane("init", "--domain", "home.arpa", cwd=folder, env={"PIHOLE_DATA": "/srv/pihole"})
    assert done.returncode == 0, done.stderr
    assert "app: pihole-cloudflared-doh" in (folder / "envplane.yaml").read_text()
    assert "app name pihole-cloudflared-doh (from the folder pihole-cloudflared-DoH)" in done.stderr
    wrong = envplane("init", "--app", "Pihole_DoH", "--domain", "home.arpa", "--force", cwd=folder,
                     env={"PIHOLE_DATA": "/srv/pihole"})
    assert wrong.returncode == 2 and "--app pihole-doh" in wrong.stderr

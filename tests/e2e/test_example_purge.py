"""Issue 9, item 2, as a user meets it on the example app: a hostile DATA_PATH in the shell
and a bad `data_path` in the spec are refused, and a purge deletes nothing the instance does
not own — not the user's folder, not the project (with its secrets key), not the instance's
own data, database or bucket.
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from envplane.backends.database.postgres import PostgresDatabases
from envplane.secret import Secret
from tests.example_kit import example_copy, servers
from tests.support import cli, free_port_block, remove_example_images


@pytest.fixture()
def app(tmp_path: Path) -> Iterator[tuple[Path, dict[str, str], str]]:
    env = servers()
    base = free_port_block(60)
    folder, name = example_copy(tmp_path, "pu", lambda name: (
        f"  test:\n    port_base: {base}\n    data_path: {tmp_path}/data/test/{{app}}-pr-{{pr}}\n"))
    spec = folder / "envplane.yaml"
    env.update({"ENVPLANE_HOME": str(tmp_path / "home"), "IMAGE_TAG": name, "ENVPLANE_SECRETS": "file",
                "DATA_PATH": ""})
    yield folder, env, name
    spec.write_text(spec.read_text().replace("data_path: .\n", f"data_path: {tmp_path}/data/test/{{app}}-pr-{{pr}}\n"))
    cli("down", "test", "--pr", "9", "--purge", cwd=folder, env=env)
    remove_example_images(name)


def running(name: str) -> list[str]:
    return subprocess.run(["docker", "ps", "-q", "--filter", f"label=envplane.app={name}", "--filter",
                           "label=envplane.instance=pr-9"], capture_output=True, text=True, check=True).stdout.split()


def test_a_hostile_data_path_and_a_bad_data_path_are_refused_and_nothing_is_deleted(
        app: tuple[Path, dict[str, str], str], tmp_path: Path) -> None:
    folder, env, name = app
    done = cli("up", "test", "--pr", "9", "--build", cwd=folder, env=env)
    assert done.returncode == 0, done.stderr
    owned = tmp_path / "data" / "test" / f"{name}-pr-9"
    assert (owned / "backend_data").is_dir()
    (owned / "backend_data" / "kept.txt").write_text("the preview's own data\n")
    work = tmp_path / "work"  # the user's folder: DATA_PATH=~/work envplane down test --pr 9 --purge
    (work / "src").mkdir(parents=True)
    (work / "src" / "main.py").write_text("print('mine')\n")
    project_files = sorted(p.relative_to(folder) for p in folder.rglob("*") if ".envplane" not in p.parts)
    database = PostgresDatabases(Secret(env["ENVPLANE_POSTGRES_URL"]))
    assert database.observe(f"{name}_pr_9").database

    for hostile in (str(work), str(tmp_path), str(folder), str(owned.parent), "."):
        for args in (("down", "test", "--pr", "9", "--purge"), ("preview", "down", "--pr", "9")):
            refused = cli(*args, cwd=folder, env={**env, "DATA_PATH": hostile})
            assert refused.returncode == 2, (hostile, args, refused.stderr)
            assert "DATA_PATH" in refused.stderr and "Traceback" not in refused.stderr
    gc = cli("preview", "gc", "--idle", "0s", cwd=folder, env={**env, "DATA_PATH": str(work)})
    assert "failed to destroy pr-9" in gc.stdout and "DATA_PATH" in gc.stdout

    spec = folder / "envplane.yaml"
    spec.write_text(spec.read_text().replace(f"data_path: {tmp_path}/data/test/{{app}}-pr-{{pr}}\n",
                                             "data_path: .\n"))
    line = spec.read_text().splitlines().index("    data_path: .") + 1
    for args in (("plan", "test", "--pr", "9"), ("down", "test", "--pr", "9", "--purge")):
        refused = cli(*args, cwd=folder, env=env)
        assert refused.returncode == 2, refused.stderr
        assert "environments.test.data_path: . is not an absolute path" in refused.stderr
        assert f"{spec}:{line})" in refused.stderr

    # nothing changed: the user's folder, the project and its key, the preview and its data
    assert (work / "src" / "main.py").read_text() == "print('mine')\n"
    assert sorted(p.relative_to(folder) for p in folder.rglob("*") if ".envplane" not in p.parts) == project_files
    assert (folder / ".envplane" / "state.db").exists() and (folder / ".envplane" / "secrets.enc").exists()
    assert (owned / "backend_data" / "kept.txt").exists() and running(name)
    assert database.observe(f"{name}_pr_9").database

    spec.write_text(spec.read_text().replace("data_path: .\n", f"data_path: {tmp_path}/data/test/{{app}}-pr-{{pr}}\n"))
    done = cli("down", "test", "--pr", "9", "--purge", cwd=folder, env=env)
    assert done.returncode == 0, done.stderr
    assert not owned.exists() and not running(name) and not database.observe(f"{name}_pr_9").database
    assert (work / "src" / "main.py").exists() and (tmp_path / "data" / "test").is_dir()

"""An instance owns only the folder its data path names (issue 9, item 2).

The rule (datapath.py), the ladder defaults that pass it, bad spec values refused at plan
time with file, line and field, DATA_PATH from the shell, and the recorded data path of an
existing instance.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path, PurePosixPath

import pytest

from envplane import actions
from envplane.apply import remove_data_path
from envplane.datapath import not_owned
from envplane.errors import BackendError, IsolationError, SpecError, UsageError
from envplane.names import Instance
from envplane.spec.load import Project, load_project
from envplane.target import resolve

COMPOSE = "services:\n  web:\n    image: busybox\n    ports: ['8080:8080']\n"
SPEC = "app: shop\ndomain: example.com\ncompose: compose.yaml\n"
PROJECT = PurePosixPath("/home/me/shop")


def project(folder: Path, environments: str = "", environ: dict[str, str] | None = None) -> Project:
    (folder / "compose.yaml").write_text(COMPOSE)
    (folder / "envplane.yaml").write_text(SPEC + (f"environments:\n{environments}" if environments else ""))
    return load_project(folder / "envplane.yaml", environ or {})


@pytest.mark.parametrize(("path", "instance"), [
    ("/data/shop/staging", "staging"),
    ("/data/shop/production", "production"),
    ("/data/test/shop-pr-5", "pr-5"),
    ("/data/dr/shop", "dr"),
    ("/tmp/envplane/shop-ci-42", "ci-42"),
    ("/home/me/shop/.envplane/data/shop-docker", "docker"),
    ("/srv/shop_staging", "staging"),
    ("/data/shop/production-sg", "production-sg"),
])
def test_a_folder_that_names_the_app_and_the_instance_is_owned(path: str, instance: str) -> None:
    assert not_owned(path, "shop", instance, PROJECT) is None


@pytest.mark.parametrize(("path", "instance", "why"), [
    (".", "staging", "not an absolute path"),
    ("data/shop/staging", "staging", "not an absolute path"),
    ("/", "staging", "too close to the root"),
    ("/data", "staging", "too close to the root"),
    ("/home/me/work", "pr-5", "does not name both"),
    ("/data/shop", "production", "does not name both"),  # the seeds' default: it holds staging's
    ("/data/shop/staging", "pr-5", "does not name both"),  # another instance's folder
    ("/data/test/shop-pr-51", "pr-5", "does not name both"),  # PR 51's, not PR 5's
    ("/data/shopping/staging", "staging", "does not name both"),
    ("/data/staging", "staging", "does not name both"),  # one word cannot name both
    ("/data/shop/../etc/shop/staging", "staging", "climbs up"),
    ("/home/me/shop", "shop", "holds the project's folder"),
    ("/home/me", "shop", "holds the project's folder"),
])
def test_a_folder_that_is_not_the_instance_s_own_is_refused(path: str, instance: str, why: str) -> None:
    found = not_owned(path, "shop", instance, PROJECT)
    assert found is not None and why in found


def test_every_ladder_default_passes_the_rule(tmp_path: Path) -> None:
    p = project(tmp_path, "  production-sg: {}\n  dr-eu: {extends: dr}\n  qa: {extends: staging}\n")
    here = PurePosixPath(tmp_path.as_posix())
    paths = {}
    for name, env in p.envs.items():
        pr = 5 if env.instances == "per-pr" else None
        run = "42" if env.instances == "per-run" else None
        target = resolve(p, name, pr, run)
        assert not_owned(target.data_path, "shop", target.id, here) is None
        paths[name] = target.data_path
    assert paths == {
        "local": f"{tmp_path}/.envplane/data/shop-local",
        "docker": f"{tmp_path}/.envplane/data/shop-docker",
        "ci": "/tmp/envplane/shop-ci-42",
        "test": "/data/test/shop-pr-5",
        "staging": "/data/shop/staging",
        "production": "/data/shop/production",
        "dr": "/data/dr/shop",
        "production-sg": "/data/shop/production-sg",
        "dr-eu": "/data/dr-eu/shop",
        "qa": "/data/shop/qa",
    }


@pytest.mark.parametrize(("value", "why"), [
    (".", "not an absolute path"),
    ("/", "too close to the root"),
    ("data/staging", "not an absolute path"),
    ("{project_dir}", "holds the project's folder"),
    ("/home/me/work", "does not name both"),
    ("/data/{app}/{pr}", "template field {pr} has no value here"),
])
def test_a_bad_data_path_in_the_spec_is_refused_with_file_line_and_field(
        tmp_path: Path, value: str, why: str) -> None:
    p = project(tmp_path, f"  docker:\n    port_offset: 20000\n  staging:\n    data_path: \"{value}\"\n")
    with pytest.raises(SpecError) as caught:
        actions.plan(p, actions.resolve_checked(p, "staging"))
    [problem] = caught.value.problems
    assert (problem.field, problem.file, problem.line) == (
        "environments.staging.data_path", tmp_path / "envplane.yaml", 8)
    assert why in problem.message
    assert caught.value.exit_code == 2


def test_a_data_path_inside_another_instance_s_is_refused_naming_the_spec_line(tmp_path: Path) -> None:
    # docker (workstation) inside staging (server): by default both host groups are this machine
    p = project(tmp_path, "  docker:\n    data_path: /data/{app}/staging/{app}-docker\n")
    for env in ("staging", "docker"):
        with pytest.raises(IsolationError) as caught:
            actions.resolve_checked(p, env)
        [problem] = caught.value.problems
        assert problem.message.startswith("data path ")
        assert {"staging", "docker"} == set(problem.message.split("claimed by both ")[1].split(" and "))
        assert (problem.field, problem.line) == ("environments.docker.data_path", 6)


def test_a_pr_data_path_inside_staging_s_is_refused(tmp_path: Path) -> None:
    p = project(tmp_path, "  test:\n    data_path: /data/{app}/staging/{app}-pr-{pr}\n")
    with pytest.raises(IsolationError, match="claimed by both test pr-5 and staging"):
        actions.resolve_checked(p, "test", pr=5)


def test_a_hostile_data_path_from_the_shell_is_refused(tmp_path: Path) -> None:
    for hostile in ("/home/me/work", ".", "/", "/data", str(tmp_path)):
        p = project(tmp_path, environ={"DATA_PATH": hostile})
        with pytest.raises(UsageError, match=r"^DATA_PATH: "):
            resolve(p, "test", pr=5)


def test_an_existing_instance_keeps_its_recorded_data_path(tmp_path: Path) -> None:
    recorded = {Instance("test", pr=5): "/srv/test/shop-pr-5"}
    p = project(tmp_path, "  test:\n    data_path: /data/previews/{app}-pr-{pr}\n")
    t = resolve(p, "test", 5, recorded=recorded)
    assert t.data_path == t.variables["DATA_PATH"] == "/srv/test/shop-pr-5"
    assert any("keeps /srv/test/shop-pr-5" in w for w in t.warnings)
    assert resolve(p, "test", 6, recorded=recorded).data_path == "/data/previews/shop-pr-6"


def test_a_shell_data_path_that_disagrees_with_the_recorded_one_is_an_error(tmp_path: Path) -> None:
    known = actions.Known(data_paths={Instance("staging"): "/data/shop/staging"})
    p = project(tmp_path, environ={"DATA_PATH": "/srv/shop/staging"})
    with pytest.raises(UsageError, match="disagrees with the data path of staging staging"):
        actions.resolve_checked(p, "staging", known=known)
    same = project(tmp_path, environ={"DATA_PATH": "/data/shop/staging/"})
    assert actions.resolve_checked(same, "staging", known=known).data_path == "/data/shop/staging"


def test_removing_an_instance_never_uses_data_path_from_the_shell(tmp_path: Path) -> None:
    # before any `up` recorded one, down uses the spec's data path; a DATA_PATH naming
    # another folder (even one the rule would accept) is an error, not a silent choice
    p = project(tmp_path, environ={"DATA_PATH": "/srv/test/shop-pr-5"})
    with pytest.raises(UsageError, match="is not the data path of test pr-5"):
        actions.resolve_existing(p, "test", 5)
    known = actions.Known(data_paths={Instance("test", pr=5): "/srv/test/shop-pr-5"})
    assert actions.resolve_existing(p, "test", 5, known=known).data_path == "/srv/test/shop-pr-5"
    assert actions.resolve_existing(project(tmp_path), "test", 5).data_path == "/data/test/shop-pr-5"


def test_the_last_look_before_deleting_refuses_a_folder_the_instance_does_not_own(tmp_path: Path) -> None:
    work = tmp_path / "work"
    (work / "notes").mkdir(parents=True)
    app = tmp_path / "app"
    app.mkdir()
    target = replace(resolve(project(app), "test", 5), data_path=str(work))
    with pytest.raises(BackendError, match="refusing to delete the data path"):
        remove_data_path(target, app)
    assert (work / "notes").is_dir()
    owned = tmp_path / "test" / "shop-pr-5"
    (owned / "db").mkdir(parents=True)
    remove_data_path(replace(target, data_path=str(owned)), app)
    assert not owned.exists()

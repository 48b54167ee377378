"""The server's registered apps, on SQLite and (integration) the test PostgreSQL."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from sqlalchemy import text

from envplane.errors import NotFound, NothingToDo, SpecError, StateError, UsageError
from envplane.server import apps
from envplane.state.db import Store

EXAMPLE = Path(__file__).resolve().parents[3] / "examples" / "finance-report"


@pytest.fixture
def example(tmp_path: Path) -> Path:
    dest = tmp_path / "finance-report"
    shutil.copytree(EXAMPLE, dest)
    return dest


def test_an_app_is_registered_by_its_spec_and_loaded_by_name(store: Store, example: Path):
    added = apps.add(store, example, {})
    assert added == apps.RegisteredApp("finance-report", example.resolve() / "envplane.yaml")
    assert apps.list_apps(store) == [added]
    project = apps.load(store, "finance-report", {})
    assert project.app == "finance-report" and project.root == example.resolve()


def test_an_unknown_app_is_not_found(store: Store):
    with pytest.raises(NotFound, match="no app named 'shop' is registered"):
        apps.load(store, "shop", {})
    with pytest.raises(NotFound):
        apps.remove(store, "shop")


def test_registering_again_changes_nothing_and_another_spec_of_the_name_is_refused(store: Store, example: Path,
                                                                                   tmp_path: Path):
    apps.add(store, example / "envplane.yaml", {})
    with pytest.raises(NothingToDo):
        apps.add(store, example, {})
    other = tmp_path / "other"
    shutil.copytree(EXAMPLE, other)
    with pytest.raises(UsageError, match="an app named finance-report is registered already from "):
        apps.add(store, other, {})
    assert [a.spec_path for a in apps.list_apps(store)] == [example.resolve() / "envplane.yaml"]


def test_a_spec_that_does_not_load_is_not_registered(store: Store, tmp_path: Path):
    (tmp_path / "envplane.yaml").write_text("app: Bad Name\n", encoding="utf-8")
    with pytest.raises(SpecError):
        apps.add(store, tmp_path, {})
    assert apps.list_apps(store) == []


def test_a_spec_renamed_after_registration_is_refused_at_load(store: Store, example: Path):
    apps.add(store, example, {})
    spec = example / "envplane.yaml"
    spec.write_text(spec.read_text(encoding="utf-8").replace("app: finance-report", "app: payroll"),
                    encoding="utf-8")
    with pytest.raises(UsageError, match="now names app payroll, registered as finance-report"):
        apps.load(store, "finance-report", {})


def test_a_removed_app_is_no_longer_served(store: Store, example: Path):
    apps.add(store, example, {})
    apps.remove(store, "finance-report")
    assert apps.list_apps(store) == []


def test_an_app_pointed_at_another_spec_in_the_database_is_not_served(store: Store, example: Path,
                                                                      tmp_path: Path):
    apps.add(store, example, {})
    other = tmp_path / "mallory"
    shutil.copytree(EXAMPLE, other)
    with store.engine.begin() as conn:
        conn.execute(text("UPDATE server_apps SET spec_path = :path"), {"path": str(other / "envplane.yaml")})
    with pytest.raises(StateError, match="the registration of app finance-report was changed outside envplane"):
        apps.load(store, "finance-report", {})
    assert [a.sealed for a in apps.list_apps(store)] == [False]


@pytest.mark.parametrize("name", ["a\x00b", "", "../x", "A", "x" * 300, "app; drop table server_apps"])
def test_a_malformed_app_name_is_simply_not_found(store: Store, name: str):
    with pytest.raises(NotFound):
        apps.load(store, name, {})
    with pytest.raises(NotFound):
        apps.remove(store, name)

"""Bucket name rules and the directory store (the embedded object store)."""

from __future__ import annotations

from pathlib import Path

import pytest

from envplane.backends.objects.directory import DirectoryStore
from envplane.backends.objects.names import bucket_problem, check_bucket
from envplane.errors import UsageError
from envplane.names import bucket_name


@pytest.mark.parametrize("name", ["finance-report-staging", "finance-report-pr-5", "abc", "a.b-c", "x" * 63])
def test_valid_buckets(name: str) -> None:
    assert check_bucket(name) == name


@pytest.mark.parametrize(
    ("name", "problem"),
    [
        ("ab", "3-63 characters"),
        ("x" * 64, "3-63 characters"),
        ("Finance", "3-63 characters"),
        ("-abc", "3-63 characters"),
        ("abc-", "3-63 characters"),
        ("a_b", "3-63 characters"),
        ("../etc", "3-63 characters"),
        ("a..b", "no '..'"),
        ("a.-b", "no '..'"),
        ("192.168.1.1", "IP address"),
        ("xn--abc", "reserved"),
        ("abc-s3alias", "reserved"),
    ],
)
def test_invalid_buckets(name: str, problem: str) -> None:
    assert problem in bucket_problem(name)
    with pytest.raises(UsageError, match="is not a bucket name"):
        check_bucket(name)


@pytest.mark.parametrize(("app", "slug"), [("finance-report", "staging"), ("Finance_Report", "pr-123"), ("a", "ci-x" * 30)])
def test_every_name_names_py_makes_is_valid(app: str, slug: str) -> None:
    assert bucket_problem(bucket_name(app, slug)) == ""


def test_folder_ensure_twice_then_purge(tmp_path: Path) -> None:
    store = DirectoryStore(tmp_path)
    assert [c.action for c in store.ensure("app-local")] == ["create"]
    again = store.ensure("app-local")
    assert again[0].action == "noop" and again[0].reason == "reuse folder app-local"
    (store.path("app-local") / "a" / "b").parent.mkdir()
    (store.path("app-local") / "a" / "b").write_text("x")
    assert store.observe("app-local").keys() == {"bucket:app-local"}
    assert store.purge("app-local")[0].reason == "1 files removed, folder deleted"
    assert store.purge("app-local")[0].action == "noop"
    assert not store.path("app-local").exists()


def test_folder_purge_leaves_other_instances(tmp_path: Path) -> None:
    store = DirectoryStore(tmp_path)
    store.ensure("app-staging")
    store.ensure("app-pr-5")
    (store.path("app-staging") / "keep").write_text("x")
    store.purge("app-pr-5")
    assert (store.path("app-staging") / "keep").read_text() == "x"


def test_folder_name_cannot_escape_the_root(tmp_path: Path) -> None:
    with pytest.raises(UsageError):
        DirectoryStore(tmp_path / "root").ensure("..")

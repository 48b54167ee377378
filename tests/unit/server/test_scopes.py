"""Scopes and what they allow: pure, the rules the API, MCP and dashboard ask through `may`."""

from __future__ import annotations

import pytest

from envplane.errors import UsageError
from envplane.server.auth import Principal, parse_scope, parse_scopes


def token(*scopes: str) -> Principal:
    return Principal("ci", "token", frozenset(scopes))


@pytest.mark.parametrize(("scope", "env", "allowed"), [
    ("deploy:test", "test", True),
    ("deploy:test", "test-prod", False),  # a glob matches the whole name, never a prefix
    ("deploy:test", "production", False),
    ("deploy:test", "tes", False),
    ("deploy:test*", "test-prod", True),
    ("deploy:test-*", "test", False),
    ("deploy:pr-?", "pr-1", True),
    ("deploy:pr-?", "pr-12", False),
    ("deploy:*", "production", True),
    ("deploy:*ing", "staging", True),
    ("approve:production", "production", False),  # approving is not deploying
    ("read", "test", False),
    ("read:logs", "test", False),
    ("admin", "production", True),
])
def test_deploy_is_allowed_on_the_envs_the_glob_matches(scope: str, env: str, allowed: bool):
    assert token(scope).may("deploy", env) is allowed


def test_approve_scopes_name_envs_like_deploy_scopes():
    approver = token("approve:production")
    assert approver.may("approve", "production")
    assert not approver.may("approve", "production-sg")
    assert not approver.may("deploy", "production")
    assert not token("deploy:production").may("approve", "production")


def test_without_an_env_only_a_scope_for_every_env_allows_deploy_or_approve():
    assert not token("deploy:test").may("deploy")
    assert token("deploy:*").may("deploy")
    assert token("admin").may("approve")
    assert not token("approve:prod*").may("approve")


def test_every_scope_reads_but_only_read_logs_and_admin_read_logs():
    for scope in ("read", "read:logs", "deploy:test", "approve:production", "admin"):
        assert token(scope).may("read")
    assert token("read:logs").may("read:logs")
    assert token("admin").may("read:logs")
    assert not token("read").may("read:logs")
    assert not token("deploy:*").may("read:logs")


def test_only_admin_allows_admin():
    assert token("admin").may("admin")
    assert not token("read", "read:logs", "deploy:*", "approve:*").may("admin")


def test_no_scope_allows_nothing():
    nobody = token()
    assert not any(nobody.may(action) for action in ("read", "read:logs", "deploy", "approve", "admin"))


def test_an_unknown_action_is_a_programming_error_not_a_no():
    with pytest.raises(ValueError, match="unknown action 'delete'"):
        token("admin").may("delete")


def test_env_names_are_matched_as_they_are():
    # a hostile env name in a request cannot widen a scope
    assert not token("deploy:test").may("deploy", "TEST")
    assert not token("deploy:test").may("deploy", "test/../production")
    assert not token("deploy:test").may("deploy", "")


@pytest.mark.parametrize("scope", ["read", "read:logs", "admin", "deploy:test", "deploy:*",
                                   "approve:production", "deploy:pr-?", " deploy:test "])
def test_valid_scopes_parse(scope: str):
    assert parse_scope(scope) == scope.strip()


@pytest.mark.parametrize(("scope", "message"), [
    ("deploy", "unknown scope 'deploy'"),
    ("deploy:", "scope 'deploy:': '' is not an env name or pattern"),
    ("write", "unknown scope 'write'"),
    ("root", "unknown scope 'root'"),
    ("read:sensitive", "unknown scope 'read:sensitive'"),
    ("Admin", "unknown scope 'Admin'"),
    ("deploy:[a-z]*", "'[a-z]*' is not an env name or pattern"),
    ("deploy:Production", "'Production' is not an env name or pattern"),
    ("deploy:test prod", "'test prod' is not an env name or pattern"),
    ("approve:../x", "'..' is not an app name or pattern"),  # APP/ENV: '..' is no app
])
def test_bad_scopes_are_usage_errors_naming_them(scope: str, message: str):
    with pytest.raises(UsageError) as caught:
        parse_scope(scope)
    assert message in caught.value.message
    assert caught.value.exit_code == 2


def test_a_token_needs_at_least_one_scope():
    with pytest.raises(UsageError, match="no scope given"):
        parse_scopes([])


def test_a_user_is_their_own_person_and_a_token_acts_for_its_owner():
    assert Principal("alice", "user", frozenset()).user == "alice"
    assert Principal("ci", "token", frozenset()).user is None
    assert Principal("ci", "token", frozenset()).actor == "token:ci"
    assert Principal("laptop", "token", frozenset(), "alice").actor == "alice (token laptop)"


@pytest.mark.parametrize(("text", "days"), [("30d", 30), ("2w", 14), ("12h", 0.5), ("never", None)])
def test_expiries_read_as_durations_or_never(text: str, days: float | None):
    from datetime import timedelta

    from envplane.server.auth import parse_expiry

    assert parse_expiry(text) == (None if days is None else timedelta(days=days))


@pytest.mark.parametrize("text", ["0d", "30s", "3651d", "99999999999999999999d", "-1d", "30", "soon", ""])
def test_expiries_out_of_range_or_unreadable_are_usage_errors(text: str):
    from envplane.server.auth import parse_expiry

    with pytest.raises(UsageError):
        parse_expiry(text)


@pytest.mark.parametrize(("scope", "app", "env", "allowed"), [
    ("deploy:shop/test", "shop", "test", True),
    ("deploy:shop/test", "blog", "test", False),  # another app of the same server
    ("deploy:shop/test", "shop", "production", False),
    ("deploy:shop/test", None, "test", False),  # a request naming no app: only a scope for every app
    ("deploy:shop-*/test", "shop-eu", "test", True),
    ("deploy:shop-*/test", "shop", "test", False),
    ("deploy:*/test", None, "test", True),
    ("deploy:shop/*", "shop", None, True),
    ("deploy:test", "blog", "test", True),  # no app part: every app, as before
    ("approve:shop/production", "shop", "production", False),  # approving is not deploying
])
def test_a_scope_with_an_app_part_holds_on_the_apps_it_names_only(scope: str, app: str | None, env: str | None,
                                                                   allowed: bool):
    assert token(scope).may("deploy", env, app) is allowed


def test_app_bound_scopes_are_checked_as_they_are_given():
    assert parse_scope("deploy:shop/test") == "deploy:shop/test"
    assert parse_scope("approve:shop-*/prod*") == "approve:shop-*/prod*"
    assert token("approve:shop/production").may("approve", "production", "shop")
    assert not token("approve:shop/production").may("approve", "production", "blog")
    assert token("deploy:shop/test").may("read")  # every scope reads, as before
    for bad, said in (("deploy:Shop/test", "not an app name"), ("deploy:shop/Test", "not an env name"),
                      ("deploy:shop/test/x", "not an env name"), ("deploy:/test", "not an app name"),
                      ("read:shop/test", "unknown scope")):
        with pytest.raises(UsageError, match=said):
            parse_scope(bad)

"""Users and tokens in the server's store, on SQLite and (integration) the test PostgreSQL."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import text

from envplane.errors import NotFound, StateError, UsageError
from envplane.secret import Secret
from envplane.server import auth
from envplane.state import audit
from envplane.state.audit_key import AuditKey
from envplane.state.db import Store, open_store
from tests.unit.state.stores import store_for

NOW = datetime(2026, 12, 2, 7, 0, tzinfo=UTC)


@pytest.fixture
def sqlite(tmp_path: Path) -> Iterator[Store]:
    """For checks that refuse before any row is read: SQLite is enough."""
    with store_for("sqlite", tmp_path) as (store, _):
        yield store


def everything_stored(store: Store) -> str:
    """Every row of the server's tables and of the audit log, as text."""
    with store.engine.connect() as conn:
        rows = [conn.execute(text(f"SELECT * FROM {table}")).all()
                for table in ("server_tokens", "server_users", "audit_log")]
    return repr(rows)


def test_a_token_authenticates_as_its_name_and_scopes(store: Store):
    info, raw = auth.create_token(store, "ci", ["deploy:test", "read"], now=NOW)
    assert isinstance(raw, Secret) and str(raw) == "***"
    principal = auth.authenticate_token(store, raw.reveal(), now=NOW)
    assert principal == auth.Principal("ci", "token", frozenset({"deploy:test", "read"}))
    assert principal.may("deploy", "test") and not principal.may("deploy", "production")
    assert info.expires_at == NOW + auth.DEFAULT_EXPIRY
    assert info.state(NOW) == "active"


def test_only_a_hash_of_the_token_is_stored_nor_is_it_in_the_audit_log(store: Store):
    _, raw = auth.create_token(store, "ci", ["read"], now=NOW)
    stored = everything_stored(store)
    assert raw.reveal() not in stored
    assert raw.reveal()[len(auth.TOKEN_PREFIX):] not in stored
    assert auth.token_hash(raw.reveal()) in stored


def test_unknown_altered_or_foreign_tokens_are_refused(store: Store):
    _, raw = auth.create_token(store, "ci", ["read"], now=NOW)
    token = raw.reveal()
    for wrong in ["", "envp_", token[:-1], token + "x", token.upper(), token[len(auth.TOKEN_PREFIX):],
                  "Bearer " + token, " " + token, "envp_" + "A" * 500, None]:
        assert auth.authenticate_token(store, wrong, now=NOW) is None


def test_an_expired_token_is_refused_from_its_expiry_on(store: Store):
    _, raw = auth.create_token(store, "short", ["read"], timedelta(days=30), now=NOW)
    assert auth.authenticate_token(store, raw, now=NOW + timedelta(days=30, seconds=-1)) is not None
    assert auth.authenticate_token(store, raw, now=NOW + timedelta(days=30)) is None
    [info] = auth.list_tokens(store)
    assert info.state(NOW + timedelta(days=31)) == "expired"


def test_a_token_without_expiry_lasts(store: Store):
    _, raw = auth.create_token(store, "forever", ["read"], None, now=NOW)
    assert auth.authenticate_token(store, raw, now=NOW + timedelta(days=3650)) is not None


def test_an_expiry_must_lie_ahead(store: Store):
    with pytest.raises(UsageError, match="expiry must be in the future"):
        auth.create_token(store, "ci", ["read"], timedelta(0))


def test_a_revoked_token_is_refused_at_once(store: Store):
    _, raw = auth.create_token(store, "ci", ["admin"], now=NOW)
    assert auth.authenticate_token(store, raw, now=NOW) is not None
    revoked = auth.revoke_token(store, "ci", actor="alice", now=NOW)
    assert revoked.state(NOW) == "revoked"
    assert auth.authenticate_token(store, raw, now=NOW) is None
    assert auth.revoke_token(store, "ci").state() == "revoked"  # again: nothing changes
    assert [(e.actor, e.action, e.detail["token"]) for e in audit.entries(store)] == [
        ("envplane", "token-create", "ci"), ("alice", "token-revoke", "ci")]


def test_revoking_an_unknown_token_is_not_found(store: Store):
    with pytest.raises(NotFound, match="no token named nope"):
        auth.revoke_token(store, "nope")


def test_last_use_is_recorded_at_most_once_a_minute(store: Store):
    _, raw = auth.create_token(store, "ci", ["read"], now=NOW)
    assert auth.list_tokens(store)[0].last_used_at is None
    auth.authenticate_token(store, raw, now=NOW + timedelta(seconds=5))
    auth.authenticate_token(store, raw, now=NOW + timedelta(seconds=30))
    assert auth.list_tokens(store)[0].last_used_at == NOW + timedelta(seconds=5)
    auth.authenticate_token(store, raw, now=NOW + timedelta(seconds=65))
    assert auth.list_tokens(store)[0].last_used_at == NOW + timedelta(seconds=65)


def test_a_live_tokens_name_cannot_be_taken_twice(store: Store):
    _, first = auth.create_token(store, "ci", ["read"], now=NOW)
    with pytest.raises(UsageError, match="a token named ci exists already"):
        auth.create_token(store, "ci", ["admin"], now=NOW)
    principal = auth.authenticate_token(store, first, now=NOW)
    assert principal is not None and principal.scopes == {"read"}


def test_a_revoked_tokens_name_is_free_again_and_the_old_token_stays_dead(store: Store):
    _, old = auth.create_token(store, "ci", ["read"], now=NOW)
    auth.revoke_token(store, "ci", now=NOW)
    _, new = auth.create_token(store, "ci", ["deploy:test"], now=NOW)
    assert auth.authenticate_token(store, old, now=NOW) is None
    assert auth.authenticate_token(store, new, now=NOW) is not None


def test_two_creates_of_one_name_at_once_make_one_token(store: Store):
    outcomes: list[object] = []
    start = threading.Barrier(4)

    def create() -> None:
        start.wait()
        try:
            outcomes.append(auth.create_token(store, "race", ["read"]))
        except UsageError as error:
            outcomes.append(error)

    threads = [threading.Thread(target=create) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sum(not isinstance(o, UsageError) for o in outcomes) == 1
    assert [t.name for t in auth.list_tokens(store)] == ["race"]


@pytest.mark.parametrize("name", ["", "-rf", "a b", "ci;drop", "x" * 101, "ci\n", "../ci", "ci/../x",
                                  "é"])
def test_hostile_token_names_are_refused(sqlite: Store, name: str):
    with pytest.raises(UsageError, match="is not a valid token name"):
        auth.create_token(sqlite, name, ["read"])
    assert auth.list_tokens(sqlite) == []


def test_bad_scopes_change_nothing(sqlite: Store):
    with pytest.raises(UsageError, match="unknown scope 'root'"):
        auth.create_token(sqlite, "ci", ["read", "root"])
    assert auth.list_tokens(sqlite) == []


def test_tokens_are_listed_without_the_token(store: Store):
    auth.create_token(store, "b", ["read"], now=NOW)
    auth.create_token(store, "a", ["deploy:test", "read:logs"], None, now=NOW)
    listed = [t.as_dict(NOW) for t in auth.list_tokens(store)]
    assert [(t["name"], t["scopes"], t["state"], t["expires_at"]) for t in listed] == [
        ("a", ["deploy:test", "read:logs"], "active", None),
        ("b", ["read"], "active", (NOW + auth.DEFAULT_EXPIRY).isoformat())]
    assert not any("envp_" in str(value) for t in listed for value in t.values())


def test_a_user_logs_in_with_their_password_only(store: Store):
    auth.add_user(store, "alice", Secret("correct horse"), ["approve:production"])
    alice = auth.check_password(store, "alice", "correct horse")
    assert alice == auth.Principal("alice", "user", frozenset({"approve:production"}))
    assert alice.user == "alice"
    for name, password in [("alice", "correct hors"), ("alice", "Correct horse"), ("alice", ""),
                           ("bob", "correct horse"), ("ALICE", "correct horse"), ("", ""),
                           ("alice", "x" * 5000)]:
        assert auth.check_password(store, name, password) is None


def test_passwords_are_kept_as_salted_scrypt_hashes(store: Store):
    auth.add_user(store, "alice", "same password")
    auth.add_user(store, "bob", "same password")
    stored = everything_stored(store)
    assert "same password" not in stored
    with store.engine.connect() as conn:
        hashes = conn.execute(text("SELECT password_hash FROM server_users")).scalars().all()
    assert all(h.startswith("scrypt$15$8$1$") for h in hashes)
    assert hashes[0] != hashes[1]


def test_a_short_password_or_a_taken_name_adds_nobody(store: Store):
    with pytest.raises(UsageError, match="at least 8 characters"):
        auth.add_user(store, "alice", "short")
    auth.add_user(store, "alice", "long enough")
    with pytest.raises(UsageError, match="a user named alice exists already"):
        auth.add_user(store, "alice", "another password")
    assert auth.check_password(store, "alice", "long enough") is not None


@pytest.mark.parametrize("name", ["", "-alice", "al ice", "alice,bob", "alice\n", "a*", "x" * 101])
def test_hostile_user_names_are_refused(sqlite: Store, name: str):
    with pytest.raises(UsageError, match="is not a valid user name"):
        auth.add_user(sqlite, name, "long enough")
    assert auth.list_users(sqlite) == []


def test_a_tokens_owner_must_exist_and_removing_them_ends_the_token(store: Store):
    with pytest.raises(NotFound, match="no user 'alice'"):
        auth.create_token(store, "laptop", ["approve:*"], user="alice")
    auth.add_user(store, "alice", "long enough")
    _, raw = auth.create_token(store, "laptop", ["approve:*"], user="alice", now=NOW)
    principal = auth.authenticate_token(store, raw, now=NOW)
    assert principal is not None and (principal.kind, principal.user) == ("token", "alice")
    auth.remove_user(store, "alice")
    assert auth.authenticate_token(store, raw, now=NOW) is None
    assert auth.list_tokens(store)[0].state() == "revoked"


def test_a_new_password_replaces_the_old(store: Store):
    auth.add_user(store, "alice", "first password")
    auth.set_password(store, "alice", "second password")
    assert auth.check_password(store, "alice", "first password") is None
    assert auth.check_password(store, "alice", "second password") is not None


# --- someone who can write the database but not read the key ------------------------------------

def sql(store: Store, statement: str, **params: object) -> None:
    with store.engine.begin() as conn:
        conn.execute(text(statement), params)


def test_a_token_row_written_into_the_database_by_hand_is_refused(store: Store):
    raw = auth.TOKEN_PREFIX + "x" * 43
    sql(store, "INSERT INTO server_tokens (name, token_hash, scopes, created_at, created_by) "
        "VALUES ('evil', :hash, 'admin', :at, 'mallory')", hash=auth.token_hash(raw), at=NOW)
    assert auth.authenticate_token(store, raw, now=NOW) is None
    assert [(t.name, t.state(NOW)) for t in auth.list_tokens(store)] == [("evil", "invalid")]


@pytest.mark.parametrize(("change", "params"), [
    ("UPDATE server_tokens SET scopes = 'admin'", {}),
    ("UPDATE server_tokens SET revoked_at = NULL", {}),
    ("UPDATE server_tokens SET expires_at = :later", {"later": NOW + timedelta(days=3000)}),
    ("UPDATE server_tokens SET owner = 'alice'", {}),
])
def test_a_token_widened_revived_or_prolonged_in_the_database_is_refused(store: Store, change: str,
                                                                          params: dict[str, object]):
    auth.add_user(store, "alice", "long enough")
    _, raw = auth.create_token(store, "ci", ["read"], timedelta(days=1), now=NOW)
    if "revoked_at" in change:
        auth.revoke_token(store, "ci", now=NOW)
    sql(store, change, **params)
    assert auth.authenticate_token(store, raw, now=NOW + timedelta(hours=1)) is None
    assert auth.list_tokens(store)[0].state(NOW) == "invalid"


def test_a_password_hash_or_scopes_changed_in_the_database_let_nobody_in(store: Store):
    auth.add_user(store, "alice", "alices password")
    auth.add_user(store, "mallory", "mallorys password")
    sql(store, "UPDATE server_users SET password_hash = (SELECT password_hash FROM server_users "
        "WHERE name = 'mallory') WHERE name = 'alice'")
    sql(store, "UPDATE server_users SET scopes = 'admin' WHERE name = 'mallory'")
    assert auth.check_password(store, "alice", "mallorys password") is None
    assert auth.check_password(store, "mallory", "mallorys password") is None
    assert {u.name: u.sealed for u in auth.list_users(store)} == {"alice": False, "mallory": False}
    with pytest.raises(StateError, match="was changed outside envplane"):  # a new password must not bless it
        auth.set_password(store, "mallory", "another password")


def test_a_store_opened_with_another_key_trusts_none_of_the_rows(store_and_url: tuple[Store, str | None],
                                                                 tmp_path: Path):
    store, url = store_and_url
    _, raw = auth.create_token(store, "ci", ["read"], now=NOW)
    auth.add_user(store, "alice", "long enough")
    other = open_store(tmp_path, url, AuditKey(b"o" * 32, "another key"))
    try:
        assert auth.authenticate_token(other, raw, now=NOW) is None
        assert auth.check_password(other, "alice", "long enough") is None
    finally:
        other.close()


def test_many_requests_with_one_token_at_once_all_pass_and_record_one_last_use(store: Store):
    _, raw = auth.create_token(store, "ci", ["read"], now=NOW)
    results: list[object] = []
    start = threading.Barrier(8)

    def request() -> None:
        start.wait()
        try:
            results.append(auth.authenticate_token(store, raw, now=NOW + timedelta(minutes=5)))
        except Exception as error:  # a request that fails on bookkeeping is the bug
            results.append(error)

    for _ in range(3):
        threads = [threading.Thread(target=request) for _ in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        start.reset()
    assert all(isinstance(r, auth.Principal) for r in results), results
    assert auth.list_tokens(store)[0].last_used_at == NOW + timedelta(minutes=5)


@pytest.mark.parametrize("name", ["a\x00b", "-x", ""])
def test_removing_or_resetting_a_malformed_user_name_is_bad_input(store: Store, name: str):
    with pytest.raises(UsageError, match="is not a valid user name"):
        auth.remove_user(store, name)
    with pytest.raises(UsageError, match="is not a valid user name"):
        auth.set_password(store, name, "long enough")
    assert auth.check_password(store, name, "long enough") is None
    assert auth.authenticate_token(store, auth.TOKEN_PREFIX + "\x00" * 10) is None


def test_a_users_principal_now_is_none_once_removed_or_forged(store: Store):
    auth.add_user(store, "alice", "long enough", ["read"])
    auth.add_user(store, "bob", "long enough", ["read"])
    assert auth.user_principal(store, "alice") == auth.Principal("alice", "user", frozenset({"read"}))
    sql(store, "UPDATE server_users SET scopes = 'admin' WHERE name = 'alice'")  # a live session must not gain it
    auth.remove_user(store, "bob")
    assert auth.user_principal(store, "alice") is None
    assert auth.user_principal(store, "bob") is None
    assert auth.user_principal(store, "a\x00") is None

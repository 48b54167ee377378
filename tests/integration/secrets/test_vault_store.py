"""The Vault store against a real OpenBao dev server (scripts/services/openbao.sh).

Each test enables its own KV v2 mount, so tests run in parallel on one server and the
paths stay exactly those of the issue (`finance-report/staging/...`).
"""

from __future__ import annotations

import contextlib
import os
import urllib.request
import uuid
from collections.abc import Iterator

import hvac  # type: ignore[import-untyped]
import pytest

from envplane.backends.secrets.vault import VaultConfig, VaultSecretStore
from envplane.errors import BackendError
from envplane.secret import Secret
from tests.support import need

pytestmark = pytest.mark.integration

VALUE = "production-db-password-that-must-not-leak"
STAGING = "secret/data/finance-report/staging/backend"
PRODUCTION = "secret/data/finance-report/production/backend"
HOW = "run scripts/services/openbao.sh and eval its last line"


def reachable(addr: str) -> bool:
    try:
        urllib.request.urlopen(f"{addr}/v1/sys/health", timeout=2)
    except OSError:
        return False
    return True


@pytest.fixture
def root() -> hvac.Client:
    addr, token = os.environ.get("VAULT_ADDR", ""), os.environ.get("VAULT_TOKEN", "")
    need("OpenBao", bool(addr and token), f"VAULT_ADDR and VAULT_TOKEN are not set; {HOW}")
    need("OpenBao", reachable(addr), f"nothing answers at {addr}; {HOW}")
    return hvac.Client(url=addr, token=token)


@pytest.fixture
def mount(root: hvac.Client) -> Iterator[str]:
    name = f"t{uuid.uuid4().hex[:12]}"
    root.sys.enable_secrets_engine("kv", path=name, options={"version": "2"})
    yield name
    root.sys.disable_secrets_engine(name)


def store_for(root: hvac.Client, mount: str, **credentials: Secret) -> VaultSecretStore:
    return VaultSecretStore(VaultConfig(addr=root.url, mount=mount, **credentials))


def scoped_token(root: hvac.Client, mount: str, env: str) -> Secret:
    """A token whose policy allows finance-report/{env}/* only."""
    policy = f"""
path "{mount}/data/finance-report/{env}/*" {{ capabilities = ["create", "read", "update", "delete"] }}
path "{mount}/metadata/finance-report/{env}/*" {{ capabilities = ["read", "list", "delete"] }}
"""
    name = f"{mount}-{env}"
    root.sys.create_or_update_policy(name=name, policy=policy)
    answer = root.auth.token.create(policies=[name], ttl="10m")
    return Secret(answer["auth"]["client_token"])


def test_round_trip_and_merge(root: hvac.Client, mount: str) -> None:
    store = store_for(root, mount, token=Secret(root.token))
    assert store.read(STAGING) == {}
    store.write(STAGING, {"DB_PASSWORD": Secret(VALUE), "A": Secret("1")})
    store.write("finance-report/staging/backend", {"A": Secret("2")})
    assert store.read(STAGING) == {"DB_PASSWORD": Secret(VALUE), "A": Secret("2")}
    store.delete(STAGING)
    store.delete(STAGING)
    assert store.read(STAGING) == {}


def test_approle_login(root: hvac.Client, mount: str) -> None:
    if "approle/" not in root.sys.list_auth_methods()["data"]:
        # Another test may enable it at the same moment.
        with contextlib.suppress(hvac.exceptions.InvalidRequest):
            root.sys.enable_auth_method("approle")
    role = f"{mount}-staging"
    scoped_token(root, mount, "staging")  # creates the policy of that name, which the role gets
    root.auth.approle.create_or_update_approle(role, token_policies=[role], token_ttl="10m")
    role_id = root.auth.approle.read_role_id(role)["data"]["role_id"]
    secret_id = root.auth.approle.generate_secret_id(role)["data"]["secret_id"]

    store = store_for(root, mount, role_id=Secret(role_id), secret_id=Secret(secret_id))
    store.write(STAGING, {"DB_PASSWORD": Secret(VALUE)})
    assert store.read(STAGING) == {"DB_PASSWORD": Secret(VALUE)}
    with pytest.raises(BackendError, match="permission denied"):
        store.read(PRODUCTION)

    wrong = store_for(root, mount, role_id=Secret(role_id), secret_id=Secret("not-the-secret-id"))
    with pytest.raises(BackendError, match="AppRole login") as caught:
        wrong.read(STAGING)
    assert "not-the-secret-id" not in str(caught.value) + caught.value.hint


def test_staging_token_is_refused_on_production(root: hvac.Client, mount: str) -> None:
    """The acceptance test of issue 4: a staging policy cannot touch production's secrets."""
    admin = store_for(root, mount, token=Secret(root.token))
    admin.write(PRODUCTION, {"DB_PASSWORD": Secret(VALUE)})
    staging = store_for(root, mount, token=scoped_token(root, mount, "staging"))

    staging.write(STAGING, {"DB_PASSWORD": Secret("staging-password")})
    assert staging.read(STAGING) == {"DB_PASSWORD": Secret("staging-password")}
    attempts = [
        lambda: staging.read(PRODUCTION),
        lambda: staging.write(PRODUCTION, {"DB_PASSWORD": Secret("overwritten")}),
        lambda: staging.delete(PRODUCTION),
        lambda: staging.list("finance-report/production"),
    ]
    for attempt in attempts:
        with pytest.raises(BackendError) as caught:
            attempt()
        text = f"{caught.value} {caught.value.hint}"
        assert PRODUCTION in text or "finance-report/production" in text
        assert "the token's policy does not allow" in caught.value.hint
        assert VALUE not in text and "overwritten" not in text
    assert admin.read(PRODUCTION) == {"DB_PASSWORD": Secret(VALUE)}


def test_delete_tree_removes_a_pr_and_keeps_staging(root: hvac.Client, mount: str) -> None:
    store = store_for(root, mount, token=Secret(root.token))
    pr = "secret/data/finance-report/test-pr-5"
    kept = [STAGING, "secret/data/finance-report/test-pr-50/backend"]
    for path in [f"{pr}/backend", f"{pr}/worker", f"{pr}/db/replica", *kept]:
        store.write(path, {"PASSWORD": Secret(VALUE)})
    assert store.list(pr) == [f"{pr}/backend", f"{pr}/db/replica", f"{pr}/worker"]
    assert store.delete_tree(pr) == 3
    assert store.list(pr) == []
    assert store.list("finance-report") == sorted(kept)
    assert store.read(STAGING) == {"PASSWORD": Secret(VALUE)}


def test_unknown_token_and_unreachable_server(root: hvac.Client, mount: str) -> None:
    bad = store_for(root, mount, token=Secret("s.not-a-token"))
    with pytest.raises(BackendError, match="does not accept the token") as caught:
        bad.write(STAGING, {"DB_PASSWORD": Secret(VALUE)})
    assert VALUE not in str(caught.value)
    assert "s.not-a-token" not in str(caught.value) + caught.value.hint

    gone = VaultSecretStore(VaultConfig(addr="http://127.0.0.1:9", token=Secret("root"), timeout=2))
    with pytest.raises(BackendError, match="cannot reach Vault") as caught:
        gone.write(STAGING, {"DB_PASSWORD": Secret(VALUE)})
    assert "VAULT_ADDR" in caught.value.hint
    assert VALUE not in str(caught.value)

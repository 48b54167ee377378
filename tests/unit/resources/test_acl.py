"""Redis ACL rules, prefixes and patterns as data; parsing recorded ACL GETUSER answers."""

from __future__ import annotations

import hashlib

import pytest

from envplane.backends.cache import acl
from envplane.errors import UsageError
from envplane.secret import Secret

PREFIX = "finance-report:staging:"
HASH = hashlib.sha256(b"pw").hexdigest()
# redis-py 8 against Redis 7.0, for a user made by acl_rules (Redis drops -@admin).
RECORDED = {
    "flags": ["on", "sanitize-payload"], "passwords": [HASH],
    "commands": ["-randomkey", "-pubsub", "-client|tracking", "-scan"],
    "keys": ["~finance-report:staging:*"], "channels": ["&finance-report:staging:*"],
    "selectors": [], "categories": ["+@all", "-@dangerous"], "enabled": True,
}


def test_rules_are_exact_and_hold_no_password() -> None:
    rules = acl.acl_rules(PREFIX, acl.password_hash(Secret("pw")))
    assert rules == ["reset", "on", f"#{HASH}", "~finance-report:staging:*", "&finance-report:staging:*",
                     "+@all", "-@admin", "-@dangerous", "-scan", "-randomkey", "-pubsub", "-client|tracking"]
    assert "pw" not in rules and ">pw" not in rules


@pytest.mark.parametrize("prefix", [PREFIX, "finance-report:pr-5:", "app:ci-42:", "a_b.c:d:"])
def test_valid_prefixes(prefix: str) -> None:
    assert acl.user_name(prefix) == prefix[:-1]


@pytest.mark.parametrize(
    "prefix", ["finance-report:staging", "finance-report:", "a:b:c:", "a*:b:", "a:b?:", "a b:c:", ":b:", "a:[x]:", ""]
)
def test_invalid_prefixes(prefix: str) -> None:
    with pytest.raises(UsageError, match="is not a Redis key prefix"):
        acl.check_prefix(prefix)


def test_the_trailing_colon_keeps_pr_5_off_pr_50() -> None:
    assert acl.key_pattern("app:pr-5:") == "app:pr-5:*"
    assert acl.scan_pattern("app:pr-5:") == "app:pr-5:*"


def test_parse_a_recorded_user_and_find_no_difference() -> None:
    facts = acl.parse_user(PREFIX, RECORDED)
    assert facts.exists and facts.enabled
    assert facts.commands == "+@all -@dangerous -randomkey -pubsub -client|tracking -scan"
    assert acl.differences(facts, HASH) == []
    assert facts.keys_observed() == {"cache:finance-report:staging:"}
    assert HASH not in repr(facts)


def test_parse_a_missing_user() -> None:
    facts = acl.parse_user(PREFIX, None)
    assert not facts.exists and facts.keys_observed() == frozenset()


def test_parse_redis_6_strings() -> None:
    reply = {**RECORDED, "keys": "~finance-report:staging:*", "channels": "&finance-report:staging:*"}
    assert acl.differences(acl.parse_user(PREFIX, reply), HASH) == []


@pytest.mark.parametrize(
    ("change", "difference"),
    [
        ({"flags": ["off"]}, "user was disabled"),
        ({"keys": ["~*"]}, "keys were ~*"),
        ({"channels": []}, "channels were none"),
        ({"categories": ["+@all"]}, "commands were +@all -randomkey -pubsub -client|tracking -scan"),
        ({"commands": ["+flushall"]}, "commands were +@all -@dangerous +flushall"),
        # a user made before SCAN and friends were taken away (they show other instances' key names)
        ({"commands": []}, "commands were +@all -@dangerous"),
        ({"passwords": ["0" * 64]}, "password differs"),
        ({"passwords": [HASH, "0" * 64]}, "password differs"),
    ],
)
def test_differences(change: dict[str, object], difference: str) -> None:
    assert acl.differences(acl.parse_user(PREFIX, {**RECORDED, **change}), HASH) == [difference]

"""Promotion gates as data: facts in, a verdict per gate out."""

from __future__ import annotations

from datetime import UTC, datetime

from envplane.release.gates import Facts, GateConfig, evaluate
from envplane.release.reports import Finding, JUnitSummary
from envplane.release.signatures import Approval, Signer

ALICE = Signer(("alice",), "SHA256:alice-key")
BOB = Signer(("bob",), "SHA256:bob-key")
AT = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)


def approval(signer: Signer, problem: str | None = None, display_name: str = "bob") -> Approval:
    return Approval(display_name, AT, signer, problem)


GOOD = Facts(version="v1.0.45", promoter="alice", previous_env="staging", deployed_on_previous=True,
             healthy_on_previous=True, p95_ms=120, signer=ALICE, approvals=[approval(BOB)])


def failed(config: GateConfig, facts: Facts) -> list[str]:
    return [r.gate for r in evaluate(config, facts).failed]


def test_minimal_production_gates_pass_with_good_facts() -> None:
    verdict = evaluate(GateConfig(), GOOD)
    assert verdict.ok
    assert [r.gate for r in verdict.results] == ["order", "health", "performance", "approval"]


def test_no_skipping_staging() -> None:
    facts = Facts(**{**GOOD.__dict__, "deployed_on_previous": False, "healthy_on_previous": False})
    assert failed(GateConfig(), facts) == ["order", "health"]


def approval_detail(facts: Facts) -> tuple[bool, str]:
    [result] = [r for r in evaluate(GateConfig(), facts).results if r.gate == "approval"]
    return result.ok, result.detail


def test_an_approval_by_another_key_and_principal_passes() -> None:
    assert approval_detail(GOOD) == (True, "approved by bob (key SHA256:bob-key)")


def test_the_promoter_cannot_approve_alone() -> None:
    facts = Facts(**{**GOOD.__dict__, "approvals": [approval(ALICE, display_name="bob")]})
    ok, detail = approval_detail(facts)
    assert not ok and detail.startswith("only alice approved, who promotes: another person must approve")
    assert failed(GateConfig(), Facts(**{**GOOD.__dict__, "approvals": []})) == ["approval"]


def test_a_second_principal_on_the_promoters_key_is_the_same_person() -> None:
    alias = Signer(("alice2",), ALICE.fingerprint)
    assert not approval_detail(Facts(**{**GOOD.__dict__, "approvals": [approval(alias)]}))[0]


def test_the_promoters_principal_with_another_key_is_the_same_person() -> None:
    laptop = Signer(("alice",), "SHA256:alice-laptop")
    assert not approval_detail(Facts(**{**GOOD.__dict__, "approvals": [approval(laptop)]}))[0]


def test_an_approval_that_does_not_verify_never_counts_and_says_why() -> None:
    bad = approval(Signer((), "SHA256:mallory"), "the signature does not verify for anyone in approvers")
    ok, detail = approval_detail(Facts(**{**GOOD.__dict__, "approvals": [bad]}))
    assert not ok
    assert detail == "no valid approval: bob's: the signature does not verify for anyone in approvers"


def test_an_unsigned_promotion_fails_the_approval_gate() -> None:
    ok, detail = approval_detail(Facts(**{**GOOD.__dict__, "signer": None}))
    assert not ok and "not signed" in detail


def test_p95_over_the_limit_or_unmeasured_fails() -> None:
    assert failed(GateConfig(), Facts(**{**GOOD.__dict__, "p95_ms": 250})) == ["performance"]
    assert failed(GateConfig(), Facts(**{**GOOD.__dict__, "p95_ms": None})) == ["performance"]


def test_report_gates_turn_on_when_configured_and_missing_reports_fail() -> None:
    config = GateConfig(tests=True, min_coverage=95, max_severity="high", migrations=True, changelog=True)
    assert failed(config, GOOD) == ["tests", "coverage", "security", "migrations", "changelog"]
    full = Facts(**{**GOOD.__dict__, "junit": JUnitSummary(40, 0, 0, 1), "coverage": 96.5,
                    "findings": [Finding("CVE-1", "medium", "zlib")], "migrated_on_previous": True,
                    "changelog_entry": True})
    assert evaluate(config, full).ok
    worse = Facts(**{**full.__dict__, "junit": JUnitSummary(40, 1, 0, 0), "coverage": 90.0,
                     "findings": [Finding("CVE-2", "critical", "openssl")]})
    assert failed(config, worse) == ["tests", "coverage", "security"]

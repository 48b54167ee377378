"""Promotion gates as data: facts in, a verdict per gate out."""

from __future__ import annotations

from envplane.release.gates import Facts, GateConfig, evaluate
from envplane.release.reports import Finding, JUnitSummary

GOOD = Facts(version="v1.0.45", promoter="alice", previous_env="staging", deployed_on_previous=True,
             healthy_on_previous=True, p95_ms=120, approvers=["bob"])


def failed(config: GateConfig, facts: Facts) -> list[str]:
    return [r.gate for r in evaluate(config, facts).failed]


def test_minimal_production_gates_pass_with_good_facts() -> None:
    verdict = evaluate(GateConfig(), GOOD)
    assert verdict.ok
    assert [r.gate for r in verdict.results] == ["order", "health", "performance", "approval"]


def test_no_skipping_staging() -> None:
    facts = Facts(**{**GOOD.__dict__, "deployed_on_previous": False, "healthy_on_previous": False})
    assert failed(GateConfig(), facts) == ["order", "health"]


def test_the_promoter_cannot_approve_alone() -> None:
    facts = Facts(**{**GOOD.__dict__, "approvers": ["alice"]})
    [result] = evaluate(GateConfig(), facts).failed
    assert result.gate == "approval" and "another person must approve" in result.detail
    assert failed(GateConfig(), Facts(**{**GOOD.__dict__, "approvers": []})) == ["approval"]


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

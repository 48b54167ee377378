"""Gate reports parsed from the text the real tools write."""

from __future__ import annotations

import json

import pytest

from envplane.release.reports import (
    ReportError,
    at_or_above,
    changelog_has,
    coverage_percent,
    junit,
    security_findings,
)

PYTEST_JUNIT = """<?xml version="1.0" encoding="utf-8"?><testsuites name="pytest tests">
<testsuite name="pytest" errors="0" failures="1" skipped="2" tests="40" time="3.2">
<testcase classname="t" name="a"/></testsuite></testsuites>"""

COVERAGE_XML = """<?xml version="1.0" ?><coverage version="7.6" timestamp="1" lines-valid="200"
 lines-covered="191" line-rate="0.955" branches-covered="0" branches-valid="0" branch-rate="0"
 complexity="0"><packages/></coverage>"""


def test_junit_counts_every_suite() -> None:
    summary = junit(PYTEST_JUNIT)
    assert (summary.tests, summary.failed, summary.skipped) == (40, 1, 2)
    single = junit('<testsuite tests="3" failures="0" errors="1"></testsuite>')
    assert single.failed == 1


def test_coverage_percent() -> None:
    assert coverage_percent(COVERAGE_XML) == 95.5


def test_unreadable_reports_are_errors_not_passes() -> None:
    with pytest.raises(ReportError, match="not valid XML"):
        junit("<testsuite", "reports/junit.xml")
    with pytest.raises(ReportError, match="not Cobertura"):
        coverage_percent(PYTEST_JUNIT)
    with pytest.raises(ReportError, match="neither SARIF"):
        security_findings('{"hello": 1}')


def test_sarif_trivy_and_pip_audit() -> None:
    sarif = {"version": "2.1.0", "runs": [{"tool": {"driver": {"name": "bandit", "rules": [
        {"id": "B602", "properties": {"security-severity": "7.5"}}]}},
        "results": [{"ruleId": "B602", "level": "error", "locations": [
            {"physicalLocation": {"artifactLocation": {"uri": "app/run.py"}}}]},
                    {"ruleId": "B101", "level": "note"}]}]}
    found = security_findings(json.dumps(sarif))
    assert [(f.id, f.severity, f.where) for f in found] == [("B602", "high", "app/run.py"), ("B101", "low", "")]
    trivy = {"Results": [{"Target": "img", "Vulnerabilities": [
        {"VulnerabilityID": "CVE-2024-1", "PkgName": "openssl", "InstalledVersion": "3.0", "Severity": "CRITICAL"},
        {"VulnerabilityID": "CVE-2024-2", "PkgName": "zlib", "Severity": "LOW"}]}]}
    assert [f.severity for f in security_findings(json.dumps(trivy))] == ["critical", "low"]
    audit = {"dependencies": [{"name": "jinja2", "version": "3.1.2", "vulns": [{"id": "GHSA-h5c8"}]},
                              {"name": "rich", "version": "13", "vulns": []}]}
    assert [(f.id, f.where) for f in security_findings(json.dumps(audit))] == [("GHSA-h5c8", "jinja2 3.1.2")]
    assert [f.id for f in at_or_above(security_findings(json.dumps(trivy)), "high")] == ["CVE-2024-1"]


def test_changelog_sections() -> None:
    text = "# Changelog\n\n## [1.2.3] - 2026-11-20\n- fix\n\n## v1.2.2\n"
    assert changelog_has(text, "v1.2.3") and changelog_has(text, "1.2.2")
    assert not changelog_has(text, "v1.2.30") and not changelog_has(text, "v1.2.4")

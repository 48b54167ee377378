"""The reports quality gates read (seed 000 §5), parsed from their text. Pure.

- tests: JUnit XML (pytest, Jest, Maven Surefire all write it)
- coverage: Cobertura XML (coverage.py `coverage xml`, and most others)
- security: SARIF, pip-audit JSON, Trivy JSON
- changelog: CHANGELOG.md, keep-a-changelog style headings
A report that cannot be read is a ReportError naming the file, never a pass.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any
from xml.etree import ElementTree

from envplane.errors import EnvplaneError

SEVERITIES = ("low", "medium", "high", "critical")


class ReportError(EnvplaneError):
    exit_code = 2


@dataclass(frozen=True)
class JUnitSummary:
    tests: int
    failures: int
    errors: int
    skipped: int

    @property
    def failed(self) -> int:
        return self.failures + self.errors


@dataclass(frozen=True)
class Finding:
    id: str
    severity: str  # one of SEVERITIES
    where: str


def junit(text: str, name: str = "JUnit report") -> JUnitSummary:
    root = _xml(text, name)
    suites = [root] if root.tag == "testsuite" else list(root.iter("testsuite"))
    if root.tag not in ("testsuite", "testsuites"):
        raise ReportError(f"{name} is not JUnit XML (root <{root.tag}>)")
    total = JUnitSummary(0, 0, 0, 0)
    for suite in suites:
        total = JUnitSummary(
            total.tests + int(suite.get("tests", 0)),
            total.failures + int(suite.get("failures", 0)),
            total.errors + int(suite.get("errors", 0)),
            total.skipped + int(suite.get("skipped", suite.get("skips", 0)) or 0),
        )
    return total


def coverage_percent(text: str, name: str = "coverage report") -> float:
    root = _xml(text, name)
    rate = root.get("line-rate")
    if root.tag != "coverage" or rate is None:
        raise ReportError(f"{name} is not Cobertura XML (no <coverage line-rate=...>)")
    return round(float(rate) * 100, 2)


def security_findings(text: str, name: str = "security report") -> list[Finding]:
    """Findings of a SARIF, pip-audit or Trivy JSON report, with normalised severities."""
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ReportError(f"{name} is not JSON: {exc.msg} (line {exc.lineno})") from None
    if isinstance(data, dict) and "runs" in data:
        return _sarif(data)
    if isinstance(data, dict) and "Results" in data:
        return _trivy(data)
    if (isinstance(data, dict) and "dependencies" in data) or isinstance(data, list):
        return _pip_audit(data)
    raise ReportError(f"{name} is neither SARIF, pip-audit nor Trivy JSON")


def at_or_above(findings: list[Finding], threshold: str) -> list[Finding]:
    level = SEVERITIES.index(threshold)
    return [f for f in findings if SEVERITIES.index(f.severity) >= level]


def changelog_has(text: str, version: str) -> bool:
    """A heading for the version: `## [1.2.3]`, `## v1.2.3 - 2026-11-23`, `# 1.2.3`."""
    bare = re.escape(version.lstrip("v"))
    pattern = re.compile(rf"^#{{1,3}}\s*\[?v?{bare}\]?(\s|$|[-–(])", re.MULTILINE)
    return bool(pattern.search(text))


def _xml(text: str, name: str) -> ElementTree.Element:
    try:
        return ElementTree.fromstring(text)
    except ElementTree.ParseError as exc:
        raise ReportError(f"{name} is not valid XML: {exc}") from None


def _sarif(data: dict[str, Any]) -> list[Finding]:
    out = []
    for run in data.get("runs", []):
        rules = {r.get("id"): r for r in (run.get("tool", {}).get("driver", {}).get("rules") or [])}
        for result in run.get("results", []):
            rule = rules.get(result.get("ruleId"), {})
            out.append(Finding(str(result.get("ruleId", "?")), _sarif_severity(result, rule),
                               _sarif_where(result)))
    return out


def _sarif_severity(result: dict[str, Any], rule: dict[str, Any]) -> str:
    score = (rule.get("properties") or {}).get("security-severity")
    if score is not None:  # GitHub's CVSS-like score: 9+ critical, 7+ high, 4+ medium
        value = float(score)
        return "critical" if value >= 9 else "high" if value >= 7 else "medium" if value >= 4 else "low"
    level = result.get("level") or (rule.get("defaultConfiguration") or {}).get("level") or "warning"
    return {"error": "high", "warning": "medium", "note": "low", "none": "low"}.get(level, "medium")


def _sarif_where(result: dict[str, Any]) -> str:
    for location in result.get("locations") or []:
        uri = (location.get("physicalLocation") or {}).get("artifactLocation", {}).get("uri")
        if uri:
            return str(uri)
    return ""


def _trivy(data: dict[str, Any]) -> list[Finding]:
    out = []
    for result in data.get("Results") or []:
        for vuln in result.get("Vulnerabilities") or []:
            severity = str(vuln.get("Severity", "UNKNOWN")).lower()
            out.append(Finding(str(vuln.get("VulnerabilityID", "?")),
                               severity if severity in SEVERITIES else "medium",
                               f"{vuln.get('PkgName', '?')} {vuln.get('InstalledVersion', '')}".strip()))
    return out


def _pip_audit(data: Any) -> list[Finding]:
    # pip-audit gives no severity: a known vulnerability in a dependency counts as high.
    deps = data.get("dependencies", []) if isinstance(data, dict) else data
    return [Finding(str(v.get("id", "?")), "high", f"{d.get('name')} {d.get('version')}")
            for d in deps for v in d.get("vulns", [])]

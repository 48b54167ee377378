"""Quality gates of a promotion (seed 000 §5.3), decided from facts. Pure.

`evaluate(config, facts)` says, per gate, pass or fail and why. Gathering the facts
(reading report files, measuring p95 on staging, asking the state store what is deployed
and who approved) is the caller's; every gate here is a plain function of them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from envplane.release.reports import Finding, JUnitSummary, at_or_above
from envplane.release.signatures import Approval, Signer
from envplane.spec.models import GatesSpec


@dataclass(frozen=True)
class GateConfig:
    """Which gates an env runs. With a minimal spec, production runs order, health, p95
    and approval; the report gates turn on when the spec names their reports."""

    order: bool = True
    health: bool = True
    p95_ms: float | None = 200.0
    approval: bool = True
    tests: bool = False
    min_coverage: float | None = None
    max_severity: str | None = None  # a finding at or above this fails: "high"
    migrations: bool = False
    changelog: bool = False


@dataclass(frozen=True)
class Facts:
    version: str
    promoter: str  # the display name
    previous_env: str | None = None  # the env the version must come from (staging)
    deployed_on_previous: bool = False
    healthy_on_previous: bool = False
    healthy_now: bool = True
    p95_ms: float | None = None
    signer: Signer | None = None  # who the promote request's signature proved
    approvals: Sequence[Approval] = ()  # each checked: signature, payload, freshness
    junit: JUnitSummary | None = None
    coverage: float | None = None
    findings: Sequence[Finding] | None = None
    migrated_on_previous: bool | None = None
    changelog_entry: bool | None = None


@dataclass(frozen=True)
class GateResult:
    gate: str
    ok: bool
    detail: str


@dataclass(frozen=True)
class Verdict:
    results: tuple[GateResult, ...] = field(default_factory=tuple)

    @property
    def ok(self) -> bool:
        return all(r.ok for r in self.results)

    @property
    def failed(self) -> list[GateResult]:
        return [r for r in self.results if not r.ok]


def evaluate(config: GateConfig, facts: Facts) -> Verdict:
    results: list[GateResult] = []
    if config.order and facts.previous_env:
        results.append(_order(facts))
    if config.health and facts.previous_env:
        state = "healthy" if facts.healthy_on_previous else "not healthy"
        results.append(GateResult("health", facts.healthy_on_previous,
                                  f"{facts.version} is {state} on {facts.previous_env}"))
    if config.p95_ms is not None:
        results.append(_p95(config.p95_ms, facts))
    if config.tests:
        results.append(_tests(facts))
    if config.min_coverage is not None:
        results.append(_coverage(config.min_coverage, facts))
    if config.max_severity is not None:
        results.append(_security(config.max_severity, facts))
    if config.migrations:
        results.append(_known("migrations", facts.migrated_on_previous,
                              f"the migrate hook of {facts.version} ran on {facts.previous_env}"))
    if config.changelog:
        results.append(_known("changelog", facts.changelog_entry,
                              f"CHANGELOG.md has a section for {facts.version}"))
    if config.approval:
        results.append(_approval(facts))
    return Verdict(tuple(results))


def _order(facts: Facts) -> GateResult:
    if facts.deployed_on_previous:
        return GateResult("order", True, f"{facts.version} was deployed on {facts.previous_env}")
    return GateResult("order", False, f"{facts.version} was never deployed on {facts.previous_env}: "
                      "no skipping envs")


def _p95(limit: float, facts: Facts) -> GateResult:
    if facts.p95_ms is None:
        return GateResult("performance", False, "p95 latency was not measured")
    ok = facts.p95_ms <= limit
    return GateResult("performance", ok, f"p95 {facts.p95_ms:.0f} ms {'<=' if ok else '>'} {limit:.0f} ms")


def _tests(facts: Facts) -> GateResult:
    if facts.junit is None:
        return GateResult("tests", False, "no JUnit report for this version")
    ok = facts.junit.failed == 0 and facts.junit.tests > 0
    return GateResult("tests", ok, f"{facts.junit.tests} tests, {facts.junit.failed} failed")


def _coverage(minimum: float, facts: Facts) -> GateResult:
    if facts.coverage is None:
        return GateResult("coverage", False, "no coverage report for this version")
    ok = facts.coverage >= minimum
    return GateResult("coverage", ok, f"{facts.coverage:.1f} % {'>=' if ok else '<'} {minimum:.1f} %")


def _security(threshold: str, facts: Facts) -> GateResult:
    if facts.findings is None:
        return GateResult("security", False, "no security report for this version")
    bad = at_or_above(list(facts.findings), threshold)
    if not bad:
        return GateResult("security", True, f"no finding at or above {threshold}")
    names = ", ".join(f"{f.id} ({f.severity})" for f in bad[:5]) + (" …" if len(bad) > 5 else "")
    return GateResult("security", False, f"{len(bad)} finding(s) at or above {threshold}: {names}")


def _known(gate: str, fact: bool | None, what: str) -> GateResult:
    if fact is None:
        return GateResult(gate, False, f"unknown: {what}?")
    return GateResult(gate, fact, what if fact else f"not so: {what}")


def _approval(facts: Facts) -> GateResult:
    """A valid approval by another person: another principal and another key than the
    promoter's, both proven by signatures. Names claimed in ENVPLANE_USER count for nothing."""
    if facts.signer is None:
        return GateResult("approval", False, "the promotion is not signed, so who promotes is unknown")
    valid = [a for a in facts.approvals if a.problem is None]
    others = [a for a in valid if not a.signer.same_person(facts.signer)]
    if others:
        names = sorted({f"{a.signer.names} (key {a.signer.fingerprint})" for a in others})
        return GateResult("approval", True, f"approved by {', '.join(names)}")
    if valid:
        return GateResult("approval", False, f"only {facts.signer.names} approved, who promotes: "
                          "another person must approve (another principal, with another key)")
    refused = [f"{a.display_name}'s: {a.problem}" for a in facts.approvals]
    if refused:
        return GateResult("approval", False, "no valid approval: " + "; ".join(refused[:3])
                          + (" …" if len(refused) > 3 else ""))
    return GateResult("approval", False, "not approved: `envplane approve VERSION --to ENV --key PATH`")


def config_for(gates: GatesSpec, has_previous: bool) -> GateConfig:
    """The gates an env's spec turns on. Order and health need an env to come from."""
    return GateConfig(
        order=has_previous and gates.order is not False,
        health=has_previous and gates.health is not False,
        p95_ms=(gates.p95_ms or 200.0) if _p95_on(gates) else None,
        approval=bool(gates.approval),
        tests=gates.junit is not None,
        min_coverage=gates.min_coverage if gates.coverage else None,
        max_severity=gates.max_severity if gates.security else None,
        migrations=bool(gates.migrations),
        changelog=gates.changelog is not None,
    )


def _p95_on(gates: GatesSpec) -> bool:
    # Writing a limit turns the gate on; `p95: false` turns it off whatever the limit.
    return gates.p95 if gates.p95 is not None else gates.p95_ms is not None

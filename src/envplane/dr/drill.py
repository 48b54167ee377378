"""`envplane dr drill`: restore production's latest backup (or a point in time) into dr or a
scratch env, run its health checks and the spec's `dr.checks`, and measure what a real
disaster would cost: RPO, the age of the restored data when the drill began, and RTO, from
the start of the drill until the restored instance is healthy and its checks pass. Both
are compared with the targets (`dr.rpo`, `dr.rto`; seed 000: 24 h and 1 h), stored in the
state store and audited; a miss or a failed check fails the drill (exit 1).
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from envplane.dr.backup import OnPart
from envplane.dr.service import Opened, open_instance, run_restore
from envplane.errors import EnvplaneError
from envplane.lifecycle import Session
from envplane.spec.load import Project
from envplane.spec.models import DrCheckSpec
from envplane.state import backups as rows
from envplane.state.clock import Clock, utc_now


@dataclass(frozen=True)
class CheckResult:
    name: str
    ok: bool
    detail: str


@dataclass(frozen=True)
class DrillReport:
    env: str
    to: str
    backup_id: str | None
    started_at: datetime
    rpo: timedelta | None
    rto: timedelta | None
    rpo_target: timedelta
    rto_target: timedelta
    checks: tuple[CheckResult, ...] = ()
    problems: tuple[str, ...] = field(default=())

    @property
    def ok(self) -> bool:
        return not self.problems

    def as_dict(self) -> dict[str, Any]:
        return {"ok": self.ok, "env": self.env, "to": self.to, "backup": self.backup_id,
                "started_at": self.started_at.isoformat(),
                "rpo_seconds": _seconds(self.rpo), "rto_seconds": _seconds(self.rto),
                "rpo_target_seconds": self.rpo_target.total_seconds(),
                "rto_target_seconds": self.rto_target.total_seconds(),
                "checks": [{"name": c.name, "ok": c.ok, "detail": c.detail} for c in self.checks],
                "problems": list(self.problems)}


def _seconds(delta: timedelta | None) -> float | None:
    return round(delta.total_seconds(), 3) if delta is not None else None


def judge(rpo: timedelta | None, rto: timedelta | None, rpo_target: timedelta, rto_target: timedelta,
          checks: tuple[CheckResult, ...]) -> tuple[str, ...]:
    """What makes a drill fail (pure)."""
    problems = [f"check {c.name} failed: {c.detail}" for c in checks if not c.ok]
    if rpo is not None and rpo > rpo_target:
        problems.append(f"RPO {rpo} is beyond the target {rpo_target}")
    if rto is not None and rto > rto_target:
        problems.append(f"RTO {rto} is beyond the target {rto_target}")
    return tuple(problems)


def run(session: Session, project: Project, env: str, to: str, at: datetime | None,
        environ: Mapping[str, str], on_part: OnPart, on_step: Any, timeout: float,
        clock: Clock = utc_now) -> DrillReport:
    source = open_instance(project, env, None, environ)
    dest = open_instance(project, to, None, environ)
    config = source.config
    started, began = clock(), time.monotonic()
    backup_id: str | None = None
    rpo = rto = None
    checks: tuple[CheckResult, ...] = ()
    failure: str | None = None
    try:
        pitr = None
        if at is not None:
            from envplane.dr import pitr as point_in_time

            pitr = point_in_time.restorer(source, at)
        detail = run_restore(session, project, source, dest, None if at else "latest", at, on_part,
                             on_step, timeout, pitr)
        backup_id = str(detail["backup"])
        data_at = at or datetime.fromisoformat(str(detail["data_at"]))
        rpo = started - data_at
        checks = tuple(run_check(dest, check, index) for index, check in enumerate(config.checks, 1))
        rto = timedelta(seconds=time.monotonic() - began)
    except EnvplaneError as exc:
        failure = f"the restore failed: {exc.message}"
    problems = judge(rpo, rto, config.rpo, config.rto, checks) + ((failure,) if failure else ())
    report = DrillReport(env, to, backup_id, started, rpo, rto, config.rpo, config.rto, checks, problems)
    rows.record_drill(session.store, source.target.app, env, dest.target.id, backup_id, started, clock(),
                      report.ok, _seconds(rpo), _seconds(rto), session.who, report.as_dict())
    session.audit("drill", dest.target, "ok" if report.ok else "failed", report.as_dict())
    return report


def run_check(dest: Opened, check: DrCheckSpec, index: int) -> CheckResult:
    name = check.name or (f"sql #{index}" if check.sql is not None else f"http {check.http}")
    try:
        if check.sql is not None:
            return _sql_check(dest, check, name)
        return _http_check(dest, check, name)
    except EnvplaneError as exc:
        return CheckResult(name, False, exc.message)


def _sql_check(dest: Opened, check: DrCheckSpec, name: str) -> CheckResult:
    from envplane.dr import database

    if not dest.reach.has_database():
        return CheckResult(name, False, f"{dest.target.id} has no PostgreSQL database")
    conninfo, password = dest.reach.database_conninfo()
    assert check.sql is not None
    got = database.first_value(conninfo, password, check.sql)
    want = str(check.expect)
    return CheckResult(name, got == want, f"got {got!r}, expected {want!r}")


def _http_check(dest: Opened, check: DrCheckSpec, name: str) -> CheckResult:
    import urllib.error
    import urllib.request

    from envplane.target import published_url

    services = [s for s in dest.target.services if s.public is not None
                and (check.service is None or s.name == check.service)]
    if not services:
        which = f"public service {check.service}" if check.service else "public service"
        return CheckResult(name, False, f"no {which} to probe")
    service = services[0]
    assert service.public is not None and check.http is not None
    url = published_url(service.ports, service.public.port, check.http)
    if url is None:
        return CheckResult(name, False, f"service {service.name} publishes no host port")
    try:
        with urllib.request.urlopen(url, timeout=10) as answer:
            status, body = answer.status, answer.read(1_000_000).decode("utf-8", "replace")
    except urllib.error.HTTPError as exc:
        status, body = exc.code, ""
    except (urllib.error.URLError, OSError) as exc:
        return CheckResult(name, False, f"{url}: {getattr(exc, 'reason', exc)}")
    ok = status == check.status and (check.contains is None or check.contains in body)
    said = f"{url} answered {status}" + (f", body {'has' if check.contains in body else 'lacks'} "
                                         f"{check.contains!r}" if check.contains is not None else "")
    return CheckResult(name, ok, said)

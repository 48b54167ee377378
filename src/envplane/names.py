"""Naming rules: how one env instance's resources are called. Pure string functions.

Each rule is here once so the isolation check, the renderer and the backends agree.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass

from envplane.errors import UsageError


@dataclass(frozen=True)
class Instance:
    """One running copy of an env: the env itself, one PR of `test`, or one CI run."""

    env: str
    pr: int | None = None
    run: str | None = None

    @property
    def id(self) -> str:
        """Unique within an app: "staging", "pr-123", "ci-42"."""
        if self.pr is not None:
            return f"pr-{self.pr}"
        if self.run is not None:
            return f"ci-{self.run}"
        return self.env

    @classmethod
    def from_id(cls, env: str, instance_id: str) -> Instance:
        """The instance an id names (the inverse of `id`): "pr-7" of test is PR 7."""
        number = instance_id.removeprefix("pr-")
        if number != instance_id and number.isdigit():
            return cls(env, pr=int(number))
        if instance_id.startswith("ci-"):
            return cls(env, run=instance_id.removeprefix("ci-"))
        return cls(env)


def run_id(raw: str) -> str:
    """A CI run id made safe for every name it goes into (Compose, DNS, S3, SQL)."""
    cleaned = re.sub(r"[^a-z0-9]+", "-", raw.lower()).strip("-")
    if not cleaned:
        raise UsageError(f"CI run id {raw!r} has no letters or digits", "pass --run 1234")
    return cleaned[:20].strip("-")


def fill(template: str, values: dict[str, str]) -> str:
    """Fill {app}, {prefix}, {domain}, {pr}, {run} in a ladder template."""
    return template.format_map(_Strict(values))


class _Strict(dict[str, str]):
    def __missing__(self, key: str) -> str:
        raise UsageError(
            f"template field {{{key}}} has no value here",
            "use {app}, {prefix}, {domain}, {pr} (test) or {run} (ci)",
        )


def sql_identifier(*parts: str) -> str:
    """`finance-report`, `pr-5` -> `finance_report_pr_5`; PostgreSQL allows 63 bytes."""
    name = "_".join(re.sub(r"[^a-z0-9]+", "_", p.lower()).strip("_") for p in parts if p)
    return _shorten(name, 63, "_")


def bucket_name(app: str, slug: str) -> str:
    """S3 bucket names are 3-63 characters of a-z, 0-9, '-'."""
    name = re.sub(r"[^a-z0-9-]+", "-", f"{app}-{slug}".lower()).strip("-")
    return _shorten(name, 63, "-")


def container_name(app: str, service: str, suffix: str, declared: str | None) -> str:
    """The seed's pattern, `finance_report-postgres-pr-123`; a declared name keeps its stem."""
    stem = declared if declared else f"{app}-{service}"
    return f"{stem}{suffix}"


def _shorten(name: str, limit: int, sep: str) -> str:
    if len(name) <= limit:
        return name
    digest = hashlib.sha256(name.encode()).hexdigest()[:8]
    return name[: limit - 9].rstrip(sep) + sep + digest

"""Naming rules: how one env instance's resources are called. Pure string functions.

Each rule is here once so the isolation check, the renderer and the backends agree.
"""

from __future__ import annotations

import hashlib
import re
import string
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

    @property
    def flags(self) -> str:
        """What picks this instance on the command line after its env: " --pr 7", or ""."""
        if self.pr is not None:
            return f" --pr {self.pr}"
        return f" --run {self.run}" if self.run is not None else ""

    @classmethod
    def from_id(cls, env: str, instance_id: str) -> Instance:
        """The instance an id names (the inverse of `id`): "pr-7" of test is PR 7."""
        number = instance_id.removeprefix("pr-")
        if number != instance_id and number.isdigit():
            return cls(env, pr=int(number))
        if instance_id.startswith("ci-"):
            return cls(env, run=instance_id.removeprefix("ci-"))
        return cls(env)


RUN_ID_LENGTH = 20


def run_id(raw: str) -> str:
    """A CI run id made safe for every name it goes into (Compose, DNS, S3, SQL).

    An id that is already safe and short is kept. Any other is cleaned and cut, and ends
    in a hash of the whole raw id: two runs never share a name because their ids differ
    only in case, in characters cleaned away or past the cut (Jenkins' `BUILD_TAG` ends
    in the build number).
    """
    cleaned = re.sub(r"[^a-z0-9]+", "-", raw.lower()).strip("-")
    if not cleaned:
        raise UsageError(f"CI run id {raw!r} has no letters or digits", "pass --run 1234")
    if cleaned == raw and len(raw) <= RUN_ID_LENGTH:
        return raw
    digest = hashlib.sha256(raw.encode("utf-8", "surrogatepass")).hexdigest()[:8]
    return f"{cleaned[: RUN_ID_LENGTH - 9].strip('-')}-{digest}".lstrip("-")


TEMPLATE_FIELDS = ("app", "prefix", "domain", "env", "pr", "run")
DATA_PATH_FIELDS = (*TEMPLATE_FIELDS, "project_dir")  # a data path may start at the spec's folder
_TEMPLATE_HINT = ("use {app}, {prefix}, {domain}, {pr} (test) or {run} (ci), and in data_path "
                  "{project_dir}; {{ and }} for braces")


def template_problem(template: str, fields: tuple[str, ...] = TEMPLATE_FIELDS) -> str | None:
    """What is wrong with a ladder template, or None: only plain {field}s of `fields`."""
    try:
        parts = list(string.Formatter().parse(template))
    except ValueError as exc:
        return f"not a valid template: {exc}"
    for _, name, spec, conversion in parts:
        if name is None:
            continue
        if name not in fields or spec or conversion:
            written = name + (f"!{conversion}" if conversion else "") + (f":{spec}" if spec else "")
            return f"unknown template field {{{written}}}; {_TEMPLATE_HINT}"
    return None


def fill(template: str, values: dict[str, str]) -> str:
    """Fill {app}, {prefix}, {domain}, {pr}, {run} in a ladder template."""
    problem = template_problem(template, DATA_PATH_FIELDS)  # a known field with no value: _Strict
    if problem is not None:
        raise UsageError(f"template {template!r}: {problem}")
    return template.format_map(_Strict(values))


class _Strict(dict[str, str]):
    def __missing__(self, key: str) -> str:
        raise UsageError(f"template field {{{key}}} has no value here", _TEMPLATE_HINT)


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

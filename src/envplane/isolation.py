"""The isolation invariant (DESIGN.md): no two env instances share a resource.

A Target lists its claims (container names, networks, volumes, host ports, data path,
database, role, bucket, key prefix, secret path, domain). Two instances clash when they
claim the same thing; host ports and data paths only clash within one host group
(a workstation, a CI runner, a server), everything else clashes anywhere.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import PurePosixPath

from envplane.errors import IsolationError, Problem
from envplane.target import Target

HOST_SCOPED = frozenset({"host port", "data path"})


@dataclass(frozen=True)
class Claim:
    kind: str
    value: str
    owner: str  # "staging" / "test pr-5", for messages
    scope: str  # "" for global kinds, the host group for host-scoped ones


@dataclass(frozen=True)
class Violation:
    kind: str
    value: str
    first: str
    second: str

    def message(self) -> str:
        return f"{self.kind} {self.value} is claimed by both {self.first} and {self.second}"


def owner(target: Target) -> str:
    inst = target.instance
    return inst.env if inst.id == inst.env else f"{inst.env} {inst.id}"


def claims(target: Target) -> list[Claim]:
    who = owner(target)
    host = target.env.host
    out: list[tuple[str, str]] = [("compose project", target.project)]
    out += [("container", s.container_name) for s in target.services if s.container_name]
    out += [("network", n) for n in target.networks.values()]
    out += [("volume", v) for v in target.volumes.values()]
    # The process runtime runs only services with a dev command; the rest hold no port.
    running = [s for s in target.services if s.dev or target.env.runtime != "process"]
    out += [
        ("host port", f"{p.published}/{p.protocol}")
        for s in running
        for p in s.ports
        if p.published is not None
    ]
    out.append(("data path", target.data_path))
    out += [("secret path", target.secrets_prefix)]
    for kind, value in (
        ("database", target.database),
        ("database role", target.role),
        ("bucket", target.bucket),
        ("key prefix", target.redis_prefix),
        ("domain", target.domain),
    ):
        if value:
            out.append((kind, value))
    return [Claim(kind, value, who, host if kind in HOST_SCOPED else "") for kind, value in out]


def violations(targets: Iterable[Target]) -> list[Violation]:
    """Every pair of instances that claim one resource, each pair reported once."""
    seen: dict[tuple[str, str, str], Claim] = {}
    paths: list[Claim] = []
    found: list[Violation] = []
    for target in targets:
        mine = claims(target)
        for claim in mine:
            if claim.kind == "data path":
                found += _nested_paths(claim, paths)
                paths.append(claim)
                continue
            key = (claim.kind, claim.scope, claim.value)
            first = seen.setdefault(key, claim)
            if first is not claim and first.owner != claim.owner:
                found.append(Violation(claim.kind, claim.value, first.owner, claim.owner))
    return found


def _nested_paths(claim: Claim, earlier: Sequence[Claim]) -> list[Violation]:
    """Data paths clash when equal or nested: purging one would delete the other's data."""
    mine = PurePosixPath(claim.value)
    out = []
    for other in earlier:
        if other.scope != claim.scope or other.owner == claim.owner:
            continue
        theirs = PurePosixPath(other.value)
        if mine == theirs or mine.is_relative_to(theirs) or theirs.is_relative_to(mine):
            out.append(Violation("data path", f"{other.value} / {claim.value}", other.owner, claim.owner))
    return out


def check(target: Target, others: Sequence[Target]) -> None:
    """Raise IsolationError naming both sides of every clash of `target` with `others`.

    Clashes among the others are theirs to report when they are planned.
    """
    me = owner(target)
    found = [v for v in violations([target, *others]) if me in (v.first, v.second)]
    if found:
        raise IsolationError(
            [
                Problem(
                    v.message(),
                    hint="give one of them its own value in environments.<env> of envplane.yaml",
                )
                for v in found
            ]
        )

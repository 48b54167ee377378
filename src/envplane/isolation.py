"""The isolation invariant (DESIGN.md): no two env instances share a resource.

A Target lists its claims (container names, networks, volumes, host ports, data path,
database, role, bucket, key prefix, secret path, domain). Two instances clash when they
claim the same thing; what belongs to a machine (host ports, host folders and namespaces)
only clashes on one machine (the machine is the unit, not the host group's name: `place`).
Everything else clashes anywhere. Data paths clash anywhere when one contains the other:
that dr or a new env's group is another machine is an assumption until `hosts:` says so,
and purging one instance must never delete another's data (datapath.py has the rest of
that rule).

What a service takes from the host itself is claimed too, within its host group: the
host's network, PID or IPC namespace (`network_mode: host`, `pid: host`, `ipc: host`)
and every host folder it bind-mounts outside its data path. Such a claim clashes with the
same one of another instance, and a host folder with any folder it contains or sits in
(another instance's data path included), unless the spec's `shared:` declares it on both
sides. Relative binds are the app's own files (its checkout) and claim nothing.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import PurePosixPath

from envplane.errors import IsolationError, Problem
from envplane.hosts.engine import LOCAL
from envplane.spec.ladder import LOCAL_GROUPS
from envplane.spec.source import Document
from envplane.target import HostUse, ServiceTarget, Target, local_alias

NAMESPACE_KINDS = {"network_mode": "host network", "pid": "host PID namespace", "ipc": "host IPC namespace"}
HOST_SCOPED = frozenset({"host port", "data path", "host path", *NAMESPACE_KINDS.values()})
PATH_KINDS = frozenset({"data path", "host path"})  # compared by containment, not equality
LABEL_SHARED = "envplane.shared"  # what a container shares by the spec's leave, for `verify`


@dataclass(frozen=True)
class Place:
    """Where a host-scoped claim is made: the machine, and the host group on it."""

    group: str
    machine: str
    process: bool = False  # env local: processes in one terminal, no engine

    def meets(self, other: Place) -> bool:
        """Containers on one machine meet; processes meet what runs in their own host group
        (local's processes meet docker's containers, not production's: production does not
        run on a developer's workstation, and local keeps production's ports)."""
        if self.process or other.process:
            return self.machine == other.machine and self.group == other.group
        return self.machine == other.machine


@dataclass(frozen=True)
class Claim:
    kind: str
    value: str
    owner: str  # "staging" / "test pr-5", for messages
    place: Place | None  # None for global kinds; where host-scoped ones are made
    where: str = ""  # the field that makes the claim, when it is not the kind itself
    declared: bool = False  # listed under the spec's `shared:`

    def meets(self, other: Claim) -> bool:
        """Whether the two claims could take the same thing: anywhere for a name, on one
        machine for what belongs to the host."""
        return self.place is None or other.place is None or self.place.meets(other.place)


@dataclass(frozen=True)
class Violation:
    kind: str
    value: str
    first: str
    second: str
    where: tuple[str, str] = ("", "")

    def message(self) -> str:
        first, second = (
            f"{who} ({where})" if where and where != self.kind else who
            for who, where in ((self.first, self.where[0]), (self.second, self.where[1]))
        )
        return f"{self.kind} {self.value} is claimed by both {first} and {second}"


def owner(target: Target) -> str:
    inst = target.instance
    return inst.env if inst.id == inst.env else f"{inst.env} {inst.id}"


def place(target: Target) -> Place:
    """The machine an instance's host-scoped claims are made on.

    An engine on another machine (spec `hosts:`) is that machine: envs on one engine are
    compared, whatever their host groups. Every other engine (the local one, another socket
    here) is this machine. Without `hosts:`, the ladder's workstation, ci and server groups
    are this machine (LOCAL_GROUPS: the tour runs docker, PRs, staging and production side
    by side), while dr and a new env's own group are hosts of their own until `hosts:` names
    their engine.
    """
    engine = target.engine
    if engine.remote:
        machine = engine.key
    elif engine.name != LOCAL.name or target.env.host in LOCAL_GROUPS:
        machine = "this machine"
    else:
        machine = f"host group {target.env.host}"
    return Place(target.env.host, machine, target.env.runtime == "process")


def claims(target: Target) -> list[Claim]:
    who = owner(target)
    here = place(target)
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
    ):
        if value:
            out.append((kind, value))
    if target.domain:  # the local proxy serves the `.localhost` alias too: it is taken as well
        out += [("domain", host) for host in dict.fromkeys((target.domain, local_alias(target.domain)))]
    named = [Claim(kind, value, who, here if kind in HOST_SCOPED else None, kind) for kind, value in out]
    return named + _host_claims(target)


def _host_claims(target: Target) -> list[Claim]:
    """What the instance's containers take from the host (none on the process runtime)."""
    if target.env.runtime == "process":
        return []
    out = []
    for use in target.host_uses:
        if use.kind == "app":
            continue
        kind = "host path" if use.kind == "bind" else NAMESPACE_KINDS[use.kind]
        value = use.value if use.kind == "bind" else f"({use.kind}: host)"
        where = use.field if use.kind == "bind" else f"services.{use.service}.{use.kind}"
        out.append(Claim(kind, value, owner(target), place(target), where, target.shared.allows(use)))
    return out


def shared_label(target: Target, service: ServiceTarget) -> dict[str, str]:
    """The label that tells `verify` what this service's containers share on purpose:
    `network_mode:host;bind:/srv/media;app:/home/me/shop/config` (app: the app's own files)."""
    items = [_label_item(use) for use in target.host_uses
             if use.service == service.name and (use.kind == "app" or target.shared.allows(use))]
    return {LABEL_SHARED: ";".join(items)} if items else {}


def _label_item(use: HostUse) -> str:
    return f"{use.kind}:{use.value}"


def violations(targets: Iterable[Target]) -> list[Violation]:
    """Every pair of instances that claim one resource, each pair reported once."""
    made = _Claimed()
    found: list[Violation] = []
    for target in targets:
        for claim in claims(target):
            found += made.clashes(claim)
            made.add(claim)
    return found


class _Claimed:
    """Claims made so far, indexed so that a new claim is compared only with those it could
    clash with (names by kind and value, host folders by every folder they sit in), not with
    every claim of every instance: checking one instance stays linear in the instances."""

    def __init__(self) -> None:
        self._named: dict[tuple[str, str], list[Claim]] = {}
        self._at: dict[PurePosixPath, list[tuple[int, Claim]]] = {}  # folder -> claims of it
        self._within: dict[PurePosixPath, list[tuple[int, Claim]]] = {}  # folder -> claims of it or in it
        self._count = 0

    def add(self, claim: Claim) -> None:
        if claim.kind not in PATH_KINDS:
            self._named.setdefault((claim.kind, claim.value), []).append(claim)
            return
        path, entry = PurePosixPath(claim.value), (self._count, claim)
        self._count += 1
        self._at.setdefault(path, []).append(entry)
        for folder in (path, *path.parents):
            self._within.setdefault(folder, []).append(entry)

    def clashes(self, claim: Claim) -> list[Violation]:
        """`claim`'s clashes with the claims made before it: the first one of a name, every
        folder equal to, inside or around a host folder (in the order they were made)."""
        if claim.kind not in PATH_KINDS:
            same = self._named.get((claim.kind, claim.value), ())
            first = next((c for c in same if c.owner != claim.owner and c.meets(claim)
                          and not (c.declared and claim.declared)), None)
            return [] if first is None else [Violation(claim.kind, claim.value, first.owner, claim.owner,
                                                       (first.where, claim.where))]
        path = PurePosixPath(claim.value)
        near = self._within.get(path, []) + [e for folder in path.parents for e in self._at.get(folder, [])]
        found = (_nested_paths(other, claim) for _, other in sorted(near, key=lambda e: e[0]))
        return [v for v in found if v is not None]


def _nested_paths(other: Claim, claim: Claim) -> Violation | None:
    """Host folders clash when equal or nested (the caller finds those): purging one
    instance's data path would delete the other's data, and a container of one would see and
    change the other's. Host paths both declared under `shared.binds` are shared on purpose."""
    if other.owner == claim.owner or (other.declared and claim.declared):
        return None
    if not other.meets(claim) and not other.kind == claim.kind == "data path":
        return None  # two data paths clash on any machine: one purge must not reach the other
    kind = "data path" if other.kind == claim.kind == "data path" else "host path"
    same = PurePosixPath(other.value) == PurePosixPath(claim.value)
    return Violation(kind, claim.value if same else f"{other.value} / {claim.value}",
                     other.owner, claim.owner, (other.where, claim.where))


def check(target: Target, others: Sequence[Target], doc: Document | None = None) -> None:
    """Raise IsolationError naming both sides of every clash of `target` with `others`.

    Clashes among the others are theirs to report when they are planned. With the spec's
    `doc`, a data path clash names the file, line and field of the side the spec sets.
    """
    envs = {owner(t): t.env.name for t in (target, *others)}
    mine = _Claimed()  # the others' claims are compared with these only: linear in the others
    for claim in claims(target):
        mine.add(claim)
    problems = []
    for v in (v for other in others for claim in claims(other) for v in mine.clashes(claim)):
        if v.kind == "data path" and doc is not None:
            fields = [("environments", envs[side], "data_path") for side in (v.first, v.second)]
            fields.sort(key=lambda f: (f not in doc.lines, f[1] != target.env.name))
            problems.append(doc.problem(fields[0], v.message(), _hint(v.kind)))
        else:
            problems.append(Problem(v.message(), hint=_hint(v.kind)))
    if problems:
        raise IsolationError(problems)


def _hint(kind: str) -> str:
    if kind == "host path":
        return ("keep each instance's data under ${DATA_PATH}, or list the folder under "
                "shared.binds in envplane.yaml if every instance may use it")
    for key, name in NAMESPACE_KINDS.items():
        if kind == name:
            spec_key = {"network_mode": "host_network", "pid": "host_pid", "ipc": "host_ipc"}[key]
            return (f"drop `{key}: host`, or list the service under shared.{spec_key} in "
                    "envplane.yaml if every instance may share it")
    return "give one of them its own value in environments.<env> of envplane.yaml"

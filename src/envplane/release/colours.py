"""Blue-green colours of one env instance. Pure: a Target in, the Targets to run out.

A colour is a second Compose project of the same instance (`finance-report-blue`), so
the new version starts beside the running one. What differs per colour:
- the project, container and network names get `-{colour}`;
- every published port moves to a host port picked free at deploy time, because the
  running colour holds the usual ones; the proxy, not the port, is the public address;
- its containers carry the `envplane.colour` label.
What stays: the instance labels (both colours are one instance to the isolation check),
the volumes (the new version reads the data of the old, as with Kamal), the database,
bucket, cache and secrets.

Only stateless services are coloured. The stateful ones (release/stateful.py) run once,
in the instance's own project (`finance-report`, as `up` names it), like Kamal's
accessories: `stateful_part` is that project. A Compose network that a stateful and a
coloured service are both on becomes one network per colour, owned by the stateful
project (`finance-report_default-blue-shared`): each colour reaches `db` by its service
name as before, and the colours never see each other's names.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable, Mapping
from dataclasses import replace
from typing import Any, Literal

from envplane.backends.runtime.facts import ContainerFact
from envplane.compose.merge import ComposeModel
from envplane.errors import SpecError
from envplane.ports import PortPlan
from envplane.release.stateful import Verdict, blue_green_problems, named_volumes
from envplane.spec.source import Document
from envplane.target import Target

Colour = Literal["blue", "green"]
COLOURS: tuple[Colour, Colour] = ("blue", "green")
LABEL_COLOUR = "envplane.colour"


def other(colour: str | None) -> Colour:
    """The colour to deploy next: the one not serving (blue first)."""
    return "green" if colour == "blue" else "blue"


def coloured(target: Target, colour: Colour, host_ports: Mapping[tuple[str, int], int]) -> Target:
    """The target of one colour, without the stateful services; `host_ports` maps
    (service, container port) to a host port."""
    services = tuple(
        replace(
            s,
            container_name=f"{s.container_name}-{colour}" if s.container_name else None,
            ports=tuple(_moved(p, host_ports) for p in s.ports),
        )
        for s in target.services
        if not s.stateful
    )
    once = stateful_names(target)
    data = copy.deepcopy(target.compose.data)
    data["services"] = {name: _needs_dropped(svc, once) for name, svc in data.get("services", {}).items()
                        if name not in once}
    _only_used_volumes(data)
    shared = shared_networks(target)
    if shared:  # joined, not created: the stateful project owns them
        data["networks"] = {**(data.get("networks") or {}),
                            **{key: {"external": True, "name": shared_network(target, key, colour)}
                               for key in shared}}
    return replace(
        target,
        project=f"{target.project}-{colour}",
        services=services,
        networks={k: f"{v}-{colour}" for k, v in target.networks.items()},
        labels={**target.labels, LABEL_COLOUR: colour},
        compose=ComposeModel(data, target.compose.origin, target.compose.files),
    )


def check_split(target: Target, spec: Document) -> None:
    """Refuse, before anything runs, an instance blue-green cannot split (file:line errors)."""
    if target.env.strategy != "blue-green" or target.env.runtime != "compose":
        return
    verdicts = {s.name: Verdict(s.stateful, s.stateful_reason) for s in target.services}
    public = [s.name for s in target.services if s.public is not None]
    problems = blue_green_problems(verdicts, public, target.compose, spec, target.env.name)
    if problems:
        raise SpecError(problems)


def stateful_names(target: Target) -> frozenset[str]:
    return frozenset(s.name for s in target.services if s.stateful)


def stateful_part(target: Target) -> Target:
    """The instance's own project with only its stateful services, joined to each colour
    on the networks they share with coloured services. Its file is the same whatever the
    colour, so Compose recreates a stateful container only when its own definition changed."""
    once = stateful_names(target)
    shared = shared_networks(target)
    aliases = _link_aliases(target, once)
    data = copy.deepcopy(target.compose.data)
    services = {}
    for name, svc in data.get("services", {}).items():
        if name not in once:
            continue
        svc = _needs_dropped(svc, frozenset(data["services"]) - once)  # refused by the checks
        if not svc.get("network_mode"):
            declared = svc.get("networks") or {"default": None}
            joined: dict[str, Any] = {}
            for key, conf in declared.items():
                if key not in shared:
                    joined[key] = conf
                    continue
                for colour in COLOURS:
                    joined[f"{key}-{colour}"] = _per_colour(conf, aliases.get(name, ()))
            svc["networks"] = joined
        services[name] = svc
    data["services"] = services
    _only_used_volumes(data)
    networks = {k: v for k, v in (data.get("networks") or {}).items() if k not in shared}
    names = dict(target.networks)
    for key in shared:
        options = {k: v for k, v in ((data.get("networks") or {}).get(key) or {}).items()
                   if k not in ("name", "ipam")}  # two copies cannot hold one fixed subnet
        for colour in COLOURS:
            networks[f"{key}-{colour}"] = dict(options)
            names[f"{key}-{colour}"] = shared_network(target, key, colour)
    data["networks"] = networks
    return replace(
        target,
        services=tuple(s for s in target.services if s.stateful),
        networks=names,
        compose=ComposeModel(data, target.compose.origin, target.compose.files),
    )


def shared_network(target: Target, key: str, colour: str) -> str:
    """The network `key` as the stateful project and one colour share it."""
    return f"{target.networks[key]}-{colour}-shared"


def shared_networks(target: Target) -> tuple[str, ...]:
    """The instance's own networks (not external ones) that a stateful and a coloured
    service are both on."""
    once = stateful_names(target)
    stateful_on: set[str] = set()
    coloured_on: set[str] = set()
    for name, svc in target.compose.data.get("services", {}).items():
        (stateful_on if name in once else coloured_on).update(_networks_of(svc))
    return tuple(sorted(k for k in stateful_on & coloured_on if k in target.networks))


def _only_used_volumes(data: dict[str, Any]) -> None:
    """Each project declares only the volumes its own services mount, so a volume is
    declared (and labelled) the same way by the one project that uses it."""
    if not data.get("volumes"):
        return
    used = set().union(*(named_volumes(svc) for svc in data.get("services", {}).values()))
    data["volumes"] = {k: v for k, v in data["volumes"].items() if k in used}
    if not data["volumes"]:
        del data["volumes"]


def _networks_of(service: Mapping[str, Any]) -> list[str]:
    if service.get("network_mode"):
        return []
    return list(service.get("networks") or {"default": None})


def _needs_dropped(service: Mapping[str, Any], others: frozenset[str]) -> dict[str, Any]:
    """The service without its start-order needs on `others`, which run in another project:
    Compose would start a copy of them (or fail to find them). Blue-green starts the
    stateful project, healthy, before any colour."""
    out = dict(service)
    depends = out.get("depends_on")
    if isinstance(depends, Mapping):
        kept = {k: v for k, v in depends.items() if k not in others}
        out["depends_on"] = kept
    elif isinstance(depends, list):
        out["depends_on"] = [k for k in depends if k not in others]
    if not out.get("depends_on"):
        out.pop("depends_on", None)
    if out.get("links"):
        out["links"] = [link for link in out["links"] if str(link).split(":", 1)[0] not in others]
        if not out["links"]:
            del out["links"]
    return out


def _link_aliases(target: Target, once: frozenset[str]) -> dict[str, tuple[str, ...]]:
    """`links: [db:database]` in a coloured service: `database` becomes an alias of db on
    the shared networks, since the link itself is dropped."""
    found: dict[str, list[str]] = {}
    for name, svc in target.compose.data.get("services", {}).items():
        if name in once:
            continue
        for link in svc.get("links") or []:
            service, _, alias = str(link).partition(":")
            if service in once and alias and alias != service:
                found.setdefault(service, []).append(alias)
    return {k: tuple(sorted(set(v))) for k, v in found.items()}


def _per_colour(conf: Any, aliases: tuple[str, ...]) -> dict[str, Any] | None:
    out = {k: v for k, v in (conf or {}).items() if k not in ("ipv4_address", "ipv6_address")}
    if aliases:
        out["aliases"] = [*(out.get("aliases") or []), *aliases]
    return out or None


def _moved(port: PortPlan, host_ports: Mapping[tuple[str, int], int]) -> PortPlan:
    if port.published is None:
        return port
    return replace(port, published=host_ports[(port.service, port.target)])


def published(target: Target) -> list[tuple[str, int]]:
    """The (service, container port) pairs a colour must publish somewhere."""
    return [(p.service, p.target) for s in target.services if not s.stateful
            for p in s.ports if p.published is not None]


def pinned(target: Target, version: str, images: Mapping[str, Mapping[str, Any]]) -> Target:
    """The target running exactly a release's images: `image:` set, `build:` dropped.

    A promotion must never rebuild; with no `build:` Compose cannot, and a missing
    image is an error instead of a different artifact. Every service learns its
    version as ENVPLANE_RELEASE (for its health page and logs), but the stateful ones:
    their definition stays the same from release to release, so no deploy recreates them.
    """
    data = copy.deepcopy(target.compose.data)
    for name, service in data.get("services", {}).items():
        image = images.get(name)
        if image is None:
            continue
        service["image"] = image["ref"]
        service.pop("build", None)
        service["pull_policy"] = "never" if image.get("built") else service.get("pull_policy", "missing")
    model = ComposeModel(data, target.compose.origin, target.compose.files)
    services = tuple(s if s.stateful else replace(s, env={**s.env, "ENVPLANE_RELEASE": version})
                     for s in target.services)
    return replace(target, compose=model, services=services)


def running_colours(facts: Iterable[ContainerFact]) -> set[str]:
    """The colours that have a running container among an instance's containers."""
    return {str(f.labels.get(LABEL_COLOUR)) for f in facts if f.state == "running"} & set(COLOURS)


def of_colour(facts: Iterable[ContainerFact], colour: str | None) -> list[ContainerFact]:
    """The containers of one colour; all of them when the instance has no colours (None)."""
    return [f for f in facts if colour is None or f.labels.get(LABEL_COLOUR) == colour]


def serving(running: Iterable[str | None], recorded: str | None) -> str | None:
    """The colour serving now, from the colours of the instance's running containers.

    The engine is the truth: a colour with running containers serves, whatever the
    state store says. When both run (a deploy was cut off between start and stop) the
    recorded colour of the last successful deploy is the one the proxy points at.
    """
    present = {c for c in running if c in COLOURS}
    if len(present) == 1:
        return present.pop()
    return recorded if recorded in present or not present else None

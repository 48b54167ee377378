"""Blue-green colours of one env instance. Pure: a Target in, the Target of a colour out.

A colour is a second Compose project of the same instance (`finance-report-blue`), so
the new version starts beside the running one. What differs per colour:
- the project, container and network names get `-{colour}`;
- every published port moves to a host port picked free at deploy time, because the
  running colour holds the usual ones; the proxy, not the port, is the public address;
- its containers carry the `envplane.colour` label.
What stays: the instance labels (both colours are one instance to the isolation check),
the volumes (the new version reads the data of the old, as with Kamal), the database,
bucket, cache and secrets.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable, Mapping
from dataclasses import replace
from typing import Any, Literal

from envplane.backends.runtime.facts import ContainerFact
from envplane.compose.merge import ComposeModel
from envplane.ports import PortPlan
from envplane.target import Target

Colour = Literal["blue", "green"]
COLOURS: tuple[Colour, Colour] = ("blue", "green")
LABEL_COLOUR = "envplane.colour"


def other(colour: str | None) -> Colour:
    """The colour to deploy next: the one not serving (blue first)."""
    return "green" if colour == "blue" else "blue"


def coloured(target: Target, colour: Colour, host_ports: Mapping[tuple[str, int], int]) -> Target:
    """The target of one colour; `host_ports` maps (service, container port) to a host port."""
    services = tuple(
        replace(
            s,
            container_name=f"{s.container_name}-{colour}" if s.container_name else None,
            ports=tuple(_moved(p, host_ports) for p in s.ports),
        )
        for s in target.services
    )
    return replace(
        target,
        project=f"{target.project}-{colour}",
        services=services,
        networks={k: f"{v}-{colour}" for k, v in target.networks.items()},
        labels={**target.labels, LABEL_COLOUR: colour},
    )


def _moved(port: PortPlan, host_ports: Mapping[tuple[str, int], int]) -> PortPlan:
    if port.published is None:
        return port
    return replace(port, published=host_ports[(port.service, port.target)])


def published(target: Target) -> list[tuple[str, int]]:
    """The (service, container port) pairs a colour must publish somewhere."""
    return [(p.service, p.target) for s in target.services for p in s.ports if p.published is not None]


def pinned(target: Target, version: str, images: Mapping[str, Mapping[str, Any]]) -> Target:
    """The target running exactly a release's images: `image:` set, `build:` dropped.

    A promotion must never rebuild; with no `build:` Compose cannot, and a missing
    image is an error instead of a different artifact. Every service learns its
    version as ENVPLANE_RELEASE (for its health page and logs).
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
    services = tuple(replace(s, env={**s.env, "ENVPLANE_RELEASE": version}) for s in target.services)
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

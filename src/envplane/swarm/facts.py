"""What a Swarm manager says about nodes, services and tasks. Pure: JSON in, facts out
(tested on recorded `docker node/service/task inspect` output)."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from envplane.backends.runtime.facts import ContainerFact
from envplane.target import LABEL_SERVICE

# An update that ended anywhere but here failed, or was undone: its tasks are not the new ones.
UPDATE_DONE = ("completed", "")
UPDATE_FAILED = ("paused", "rollback_started", "rollback_paused", "rollback_completed")


@dataclass(frozen=True)
class Node:
    id: str
    hostname: str
    address: str  # the address the node joined with (Status.Addr)
    state: str  # ready, down, unknown
    availability: str  # active, pause, drain
    manager: bool


@dataclass(frozen=True)
class ServiceFact:
    id: str
    name: str  # the stack's service name: {stack}_{service}
    labels: Mapping[str, str]
    replicas: int | None  # None: global
    image: str
    update: str  # UpdateStatus.State ("" before any update)
    update_message: str = ""
    ports: tuple[tuple[int, int, str], ...] = ()  # (target, published, protocol), host mode
    secrets: tuple[str, ...] = ()  # names of the Docker secrets and configs its tasks get

    @property
    def service(self) -> str:
        return self.labels.get(LABEL_SERVICE, self.name.split("_", 1)[-1])


@dataclass(frozen=True)
class TaskFact:
    id: str
    service_id: str
    slot: int
    node_id: str
    desired: str  # running, shutdown, ...
    state: str  # new, pending, ..., starting, running, failed, ...
    image: str
    error: str = ""
    labels: Mapping[str, str] = field(default_factory=dict)

    @property
    def current(self) -> bool:
        return self.desired == "running"


def parse_info(text: str) -> tuple[str, bool]:
    """(LocalNodeState, ControlAvailable) from `docker info --format '{{json .Swarm}}'`."""
    data = json.loads(text or "{}") or {}
    return str(data.get("LocalNodeState", "")), bool(data.get("ControlAvailable"))


def own_node(text: str) -> str:
    """The ID of the node whose engine answered `docker info --format '{{json .Swarm}}'`."""
    return str((json.loads(text or "{}") or {}).get("NodeID", ""))


def parse_nodes(text: str) -> list[Node]:
    out = []
    for item in json.loads(text or "[]"):
        status, spec = item.get("Status") or {}, item.get("Spec") or {}
        out.append(Node(str(item["ID"]), str((item.get("Description") or {}).get("Hostname", "")),
                        str(status.get("Addr", "")), str(status.get("State", "")),
                        str(spec.get("Availability", "")), spec.get("Role") == "manager"))
    return out


def parse_services(text: str) -> list[ServiceFact]:
    out = []
    for item in json.loads(text or "[]"):
        spec = item.get("Spec") or {}
        mode = spec.get("Mode") or {}
        replicated = mode.get("Replicated")
        container = (spec.get("TaskTemplate") or {}).get("ContainerSpec") or {}
        update = item.get("UpdateStatus") or {}
        ports = [(int(p["TargetPort"]), int(p.get("PublishedPort") or 0), str(p.get("Protocol", "tcp")))
                 for p in (spec.get("EndpointSpec") or {}).get("Ports") or []]
        used = [str(s.get("SecretName", "")) for s in container.get("Secrets") or []]
        used += [str(c.get("ConfigName", "")) for c in container.get("Configs") or []]
        out.append(ServiceFact(str(item["ID"]), str(spec.get("Name", "")), dict(spec.get("Labels") or {}),
                               int(replicated.get("Replicas", 1)) if replicated is not None else None,
                               str(container.get("Image", "")), str(update.get("State", "")),
                               str(update.get("Message", "")), tuple(ports), tuple(used)))
    return out


def parse_tasks(text: str) -> list[TaskFact]:
    out = []
    for item in json.loads(text or "[]"):
        status = item.get("Status") or {}
        container = (item.get("Spec") or {}).get("ContainerSpec") or {}
        out.append(TaskFact(str(item["ID"]), str(item.get("ServiceID", "")), int(item.get("Slot") or 0),
                            str(item.get("NodeID", "")), str(item.get("DesiredState", "")),
                            str(status.get("State", "")), str(container.get("Image", "")),
                            str(status.get("Err", "")), dict(container.get("Labels") or {})))
    return out


@dataclass(frozen=True)
class Progress:
    """Where a stack's rollout stands: done, still going, or failed (with why)."""

    done: bool
    failed: str = ""
    waiting: tuple[str, ...] = ()  # "web: 1/2 running"


def progress(services: Sequence[ServiceFact], tasks: Sequence[TaskFact]) -> Progress:
    """Done when every service runs its replicas, each task of the service's current image
    (Swarm counts a task with a healthcheck as running only once it is healthy), and no
    update is under way. An update that paused or rolled back has failed."""
    waiting, failed = [], []
    for svc in services:
        mine = [t for t in tasks if t.service_id == svc.id and t.current]
        running = [t for t in mine if t.state == "running" and t.image == svc.image]
        if svc.update in UPDATE_FAILED:
            failed.append(f"{svc.service}: update {svc.update.replace('_', ' ')}"
                          + (f" ({svc.update_message})" if svc.update_message else ""))
            continue
        wanted = svc.replicas if svc.replicas is not None else len(mine)
        if len(running) < wanted or svc.update not in UPDATE_DONE or len(mine) > wanted:
            errors = sorted({t.error for t in tasks if t.service_id == svc.id and t.error})
            waiting.append(f"{svc.service}: {len(running)}/{wanted} running"
                           + (f" ({errors[-1]})" if errors else ""))
    if failed:
        return Progress(False, "; ".join(failed), tuple(waiting))
    return Progress(not waiting, "", tuple(waiting))


def as_containers(services: Sequence[ServiceFact], tasks: Sequence[TaskFact],
                  nodes: Mapping[str, str]) -> list[ContainerFact]:
    """The current tasks as the rows `status` shows for containers: `web.1@node2`."""
    by_id = {s.id: s for s in services}
    out = []
    for task in tasks:
        svc = by_id.get(task.service_id)
        if svc is None or not task.current:
            continue
        health = "healthy" if task.state == "running" else None
        ports = tuple(p for p in svc.ports if p[1])
        where = nodes.get(task.node_id, task.node_id[:12])
        out.append(ContainerFact(task.id, f"{svc.name}.{task.slot}@{where}", task.state, health,
                                 {**svc.labels, **task.labels}, ports))
    return sorted(out, key=lambda c: c.name)


def parse_labelled(text: str) -> dict[str, dict[str, str]]:
    """name -> labels, from `docker secret inspect` or `docker config inspect` JSON."""
    return {str((item.get("Spec") or {}).get("Name", "")): labels_of(item)
            for item in json.loads(text or "[]")}


def labels_of(item: Mapping[str, Any]) -> dict[str, str]:
    return dict((item.get("Spec") or {}).get("Labels") or {})

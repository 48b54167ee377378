"""`envplane verify --host MANAGER` on a swarm: the isolation proof across its nodes.

Each node's engine is observed as a host of its own (verify.observe: containers, networks,
volumes), except a task container Swarm keeps as history (no longer running, its task shut
down): the services say what should run. Then, purely: every service of the app runs its
replicas, and no service uses a Docker secret or config of another instance (or one
without an owner).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from envplane.swarm.facts import ServiceFact, TaskFact, progress
from envplane.target import LABEL_APP, LABEL_ENV, LABEL_INSTANCE
from envplane.verify import Finding, Resource

TASK_LABEL = "com.docker.swarm.task.id"


def live(resources: Sequence[Resource]) -> list[Resource]:
    """Drop the task containers Swarm keeps after their task ended (its history)."""
    return [r for r in resources
            if not (r.kind == "container" and TASK_LABEL in r.labels and r.state != "running")]


def owner(labels: Mapping[str, str]) -> str | None:
    keys = (labels.get(LABEL_APP), labels.get(LABEL_ENV), labels.get(LABEL_INSTANCE))
    return "/".join(keys) if all(keys) else None  # type: ignore[arg-type]


def findings(services: Sequence[ServiceFact], tasks: Sequence[TaskFact],
             labelled: Mapping[str, Mapping[str, str]]) -> list[Finding]:
    """`labelled`: every Docker secret and config of the swarm -> its labels."""
    out = []
    for svc in services:
        mine = owner(svc.labels)
        if mine is None:
            out.append(Finding("unowned", f"service {svc.name}", "has envplane labels but not all of app, "
                               "env, instance"))
            continue
        state = progress([svc], tasks)
        if not state.done:
            out.append(Finding("not converged", f"service {svc.name}", f"{mine}: "
                               + (state.failed or "; ".join(state.waiting))))
        for name in svc.secrets:
            theirs = owner(labelled.get(name, {}))
            if theirs != mine:
                out.append(Finding("shared secret", name,
                                   f"used by {mine}, owned by {theirs or 'no instance'}"))
    return out

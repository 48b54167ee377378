"""`status`: what runs of an app, per env instance and service, as the engines report it,
with each service's health tried once as `up` checks it, the release it runs and, when it
is not healthy, why."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from envplane.backends.runtime.compose import ComposeRuntime, inspect_existing
from envplane.backends.runtime.facts import ContainerFact
from envplane.backends.runtime.health import HealthCheck, check_once, probe
from envplane.checks import CONTAINER
from envplane.commands import docker as docker_cmd
from envplane.commands.kubectl import Cluster
from envplane.hosts.engine import LOCAL, Engine
from envplane.release.colours import LABEL_COLOUR
from envplane.secret import mask_known
from envplane.spec.load import Project
from envplane.target import LABEL_ENV, LABEL_INSTANCE, LABEL_SERVICE

if TYPE_CHECKING:
    from envplane.backends.runtime.kubernetes import PodFact
    from envplane.state.records import InstanceRecord


@dataclass(frozen=True)
class ServiceState:
    env: str
    instance: str
    service: str
    container: str
    state: str  # the engine's: running, exited, restarting, ...
    health: str  # healthy, unhealthy, starting, or "-" when nothing says
    why: str  # when not healthy: the last answer or healthcheck output (masked), the exit code
    version: str | None  # the release it runs (ENVPLANE_RELEASE)
    colour: str | None
    ports: tuple[tuple[int, int, str], ...]  # (container port, host port, protocol)
    # How the instance's last deployment ended (ok, failed, interrupted; running while one
    # runs), from the state store: a container that runs may be one whose `up` failed.
    last_deploy: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {"env": self.env, "instance": self.instance, "service": self.service,
                "container": self.container, "colour": self.colour, "state": self.state,
                "health": None if self.health == "-" else self.health, "why": self.why or None,
                "version": self.version, "last_deploy": self.last_deploy,
                "ports": [{"target": c, "published": h, "protocol": p} for c, h, p in self.ports]}


def overview(project: Project, env: str | None = None,
             probe: Callable[[str], tuple[bool, str]] = probe) -> list[dict[str, Any]]:
    """`envplane status --json`: every container and pod of the app (of `env`), then the
    instances whose purge was partial (their resources' server was missing or down)."""
    states, pods, partial = everything(project, env, probe)
    return ([s.as_dict() for s in states] + [pod_dict(p) for p in pods]
            + [{"env": r.env, "instance": r.instance, "service": None, "container": None, "colour": None,
                "state": r.status, "health": None, "ports": []} for r in partial])


def everything(project: Project, env: str | None = None, probe: Callable[[str], tuple[bool, str]] = probe
               ) -> tuple[list[ServiceState], list[PodFact], list[InstanceRecord]]:
    """What `status` shows: the containers (compose, swarm), the pods (kubernetes) and the
    partly purged instances of the app, or of `env` (an unknown env is a UsageError)."""
    import os

    from envplane.state import records  # a SQLite store without SQLAlchemy (#11)

    url = os.environ.get("ENVPLANE_STATE_URL")
    partial = [r for r in records.recorded(project.root, project.app, url)
               if r.status == records.PARTIAL and env in (None, r.env)]
    if env:
        project.env(env)  # an unknown env is a usage error, not an empty table
    on_engine = any(cfg.runtime != "kubernetes" and env in (None, n) for n, cfg in project.envs.items())
    states = of_containers(project, env, probe) if on_engine else []
    return states, pods(project, env), partial


def pod_dict(p: PodFact) -> dict[str, object]:
    return {"env": p.env, "instance": p.instance, "service": p.service, "runtime": "kubernetes",
            "namespace": p.namespace, "pod": p.name, "state": p.phase, "ready": p.ready,
            "restarts": p.restarts}


def of_containers(project: Project, env: str | None = None,
                  probe: Callable[[str], tuple[bool, str]] = probe) -> list[ServiceState]:
    """Every container of the app (of `env`) on the engines its envs run on, with its health
    and how its instance's last deployment ended."""
    states = []
    compose = any(cfg.runtime == "compose" and env in (None, n) for n, cfg in project.envs.items())
    for engine in engines(project, env) if compose else []:
        for fact in containers(project.app, engine):
            if env is None or fact.labels.get(LABEL_ENV) == env:
                states.append(state_of(project, fact, engine.local, probe))
    states += [state_of(project, fact, False, probe) for fact in tasks(project, env)]
    deploys = last_deploys(project)
    states = [replace(s, last_deploy=deploys.get((s.env, s.instance))) for s in states]
    return sorted(states, key=lambda s: (s.env, s.instance, s.service, s.container))


def last_deploys(project: Project) -> dict[tuple[str, str], str]:
    """(env, instance) -> how its last deployment ended, as the state store says (nothing
    when there is no store yet: reading must not create one)."""
    import os

    from envplane.state import records  # a SQLite store without SQLAlchemy (#11)

    url = os.environ.get("ENVPLANE_STATE_URL")
    return {(r.env, r.instance): r.status for r in records.recorded(project.root, project.app, url)}


def state_of(project: Project, fact: ContainerFact, local: bool,
             probe: Callable[[str], tuple[bool, str]] = probe) -> ServiceState:
    """One container's state; its health is one try of the check `up` waits for."""
    service = fact.labels.get(LABEL_SERVICE, fact.service)
    health, why = fact.health or "-", ""
    if fact.state != "running":
        health = "-"
        why = f"exited with code {fact.exit_code}" if fact.state == "exited" and fact.exit_code is not None \
            else ""
    else:
        check = _check(project, service, fact, local)
        if check is not None:
            ok, said = check_once(check, fact, probe)
            health = "healthy" if ok else fact.health if fact.health == "starting" else "unhealthy"
            why = "" if ok else said
        elif fact.health == "unhealthy" and fact.health_output:
            why = fact.health_output.splitlines()[-1]
    return ServiceState(fact.labels.get(LABEL_ENV, "?"), fact.labels.get(LABEL_INSTANCE, "?"), service,
                        fact.name, fact.state, health, mask_known(why), fact.release,
                        fact.labels.get(LABEL_COLOUR), fact.ports)


def _check(project: Project, service: str, fact: ContainerFact, local: bool) -> HealthCheck | None:
    """The check of `up` for a running container: its healthcheck, then its public port —
    on the host port it publishes, else (local engines) on its own address."""
    spec = project.spec.services.get(service)
    public = spec.public if spec is not None else None
    if public is None:
        return HealthCheck(service, "healthcheck") if fact.health is not None else None
    host = next((h for c, h, p in fact.ports if c == public.port and p == "tcp"), None)
    address = f"127.0.0.1:{host}" if host is not None else f"{CONTAINER}:{public.port}" if local else None
    if address is None:
        return HealthCheck(service, "healthcheck") if fact.health is not None else None
    health = spec.health if spec is not None else None
    url, kind = (f"http://{address}{health}", "http") if health else (f"tcp://{address}", "tcp")
    return HealthCheck(service, kind, url, fact.health is not None, public.port)


def pods(project: Project, env: str | None = None) -> list[PodFact]:
    """The app's pods on each cluster its Kubernetes envs name (one query per cluster)."""
    asked = [(name, cfg) for name, cfg in project.envs.items()
             if cfg.runtime == "kubernetes" and env in (None, name) and (cfg.kubernetes.context or env)]
    if not asked:  # the Kubernetes code is ~0.05 s of imports that a Compose app's status skips (#11)
        return []
    from envplane.backends.runtime.kubernetes import KubernetesRuntime
    from envplane.kubernetes.plan import cluster

    by_cluster: dict[Cluster, set[str]] = {}
    for name, cfg in asked:
        by_cluster.setdefault(cluster(project.root, cfg), set()).add(name)
    found = [p for where, names in by_cluster.items() for p in KubernetesRuntime(where).pods(project.app)
             if p.env in names]
    return sorted(found, key=lambda p: (p.env, p.instance, p.service, p.name))


def engines(project: Project, env: str | None) -> list[Engine]:
    """The engines the app's envs (or `env`) run on: the local one, and each of hosts:."""
    from envplane.hosts.config import engine_for

    # by key: an Engine holds a mapping (its servers) and is not hashable
    used = [engine_for(project.spec, project.root, cfg) for name, cfg in project.envs.items()
            if env in (None, name) and cfg.runtime == "compose"]
    found = {e.key: e for e in used}
    return sorted(found.values() or [LOCAL], key=lambda e: (not e.local, e.key))


def containers(app_name: str, engine: Engine = LOCAL) -> list[ContainerFact]:
    """Every container of the app on one engine, found by envplane's labels."""
    from envplane.backends.runtime.facts import parse_inspect, parse_ps_lines
    from envplane.run import run as run_cmd

    runtime = ComposeRuntime(engine)
    # Only the app's containers, listed by the engine: status costs the same whatever else
    # runs on the host. The engine check (two more processes) only explains a failed listing.
    listed = run_cmd(docker_cmd.app_containers(app_name), env=runtime.env, what="docker ps", check=False)
    if listed.returncode != 0:
        runtime.check()
        listed = run_cmd(docker_cmd.app_containers(app_name), env=runtime.env, what="docker ps")
    ids = parse_ps_lines(listed.stdout)
    if not ids:
        return []
    facts = parse_inspect(inspect_existing(ids, runtime.env))
    # A Swarm task's container is shown as its task (`tasks`), not as a container here.
    return [f for f in facts if f.labels.get("envplane.app") == app_name
            and "com.docker.swarm.task.id" not in f.labels]


def tasks(project: Project, env: str | None = None) -> list[ContainerFact]:
    """The app's current Swarm tasks on each manager its swarm envs name (`web.1@node2`)."""
    asked = [(name, cfg) for name, cfg in project.envs.items()
             if cfg.runtime == "swarm" and env in (None, name)]
    if not asked:  # as for pods: no Swarm code to import when no env runs on Swarm
        return []
    from envplane.backends.runtime.swarm import SwarmRuntime
    from envplane.hosts.config import engine_for

    managers: dict[str, tuple[Engine, set[str]]] = {}
    for name, cfg in asked:
        engine = engine_for(project.spec, project.root, cfg)
        managers.setdefault(engine.key, (engine, set()))[1].add(name)
    found = []
    for engine, names in managers.values():
        runtime = SwarmRuntime(engine)
        runtime.check()
        found += [f for f in runtime.app_containers(project.app) if f.labels.get(LABEL_ENV) in names]
    return found

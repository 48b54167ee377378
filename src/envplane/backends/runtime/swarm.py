"""The swarm runtime: `docker stack` on a Swarm manager (the env's `hosts:` engine).

Everything goes to the manager, found by envplane's labels, never by name patterns; what
lives on each node (containers of tasks, node-local volumes) is reached through the
node's own engine, over SSH with the manager's user, key and known_hosts.
"""

from __future__ import annotations

import os
import time
from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path

from envplane.backends.runtime.base import Leftovers
from envplane.backends.runtime.facts import ContainerFact, names
from envplane.commands import docker as docker_cmd
from envplane.commands import swarm as cmd
from envplane.errors import BackendError
from envplane.hosts.connect import docker_env
from envplane.hosts.engine import LOCAL, Engine
from envplane.run import Result, run
from envplane.secret import Secret
from envplane.swarm import facts
from envplane.swarm.facts import Node, ServiceFact, TaskFact


class SwarmRuntime:
    name = "swarm"

    def __init__(self, engine: Engine = LOCAL, config: str | None = None) -> None:
        self.engine = engine
        self.env = docker_env(engine)
        if config is not None:  # registry credentials for --with-registry-auth
            self.env = {**(self.env or os.environ), "DOCKER_CONFIG": config}

    def _run(self, args: list[str], **options: object) -> Result:
        return run(args, env=self.env, **options)  # type: ignore[arg-type]

    def check(self) -> None:
        """The engine answers and manages a swarm (a worker cannot deploy a stack)."""
        try:
            text = self._run(cmd.swarm_info(), what="docker info", timeout=30).stdout
        except BackendError as exc:
            raise BackendError(f"the Docker engine of {self.engine.describe()} does not answer: "
                               f"{exc.message[-300:]}", "check hosts: in envplane.yaml, and that `ssh` "
                               "reaches the manager with the spec's identity and known_hosts") from None
        state, manager = facts.parse_info(text)
        if state != "active" or not manager:
            raise BackendError(f"{self.engine.describe()} is not a Swarm manager (swarm state "
                               f"{state or 'none'})", "name a manager in hosts: (`docker swarm init` there, "
                               "`docker swarm join` on the other nodes); README: Swarm")

    # Nodes ----------------------------------------------------------------------
    def nodes(self) -> list[Node]:
        ids = self._run(cmd.nodes(), what="docker node ls").stdout.split()
        return facts.parse_nodes(self._run(cmd.inspect_nodes(ids), what="docker node inspect").stdout)

    def node_engine(self, node: Node, own: str = "") -> Engine:
        """A node's own engine: the manager's way in (user, key, known_hosts) at the node's
        address; the manager itself (`own`: its node ID) as hosts: names it."""
        if node.id == own or (node.manager and node.address == self.engine.address.host):
            return self.engine
        if self.engine.kind != "ssh":
            raise BackendError(f"node {node.hostname} of {self.engine.describe()} cannot be reached: "
                               "envplane reaches other nodes over SSH",
                               "name the manager with ssh:// in hosts:")
        return replace(self.engine, address=replace(self.engine.address, host=node.address),
                       name=f"{self.engine.name}:{node.hostname}")

    def node_engines(self) -> list[tuple[Node, Engine]]:
        own = facts.own_node(self._run(cmd.swarm_info(), what="docker info").stdout)
        return [(n, self.node_engine(n, own)) for n in self.nodes() if n.state == "ready"]

    # Stacks ---------------------------------------------------------------------
    def deploy(self, file: Path, stack: str, registry: bool) -> None:
        self._run(cmd.stack_deploy(str(file), stack, registry), what=f"deploy stack {stack}", timeout=600)

    def services(self, app: str, instance: str) -> list[ServiceFact]:
        ids = self._run(cmd.services(app, instance), what="docker service ls").stdout.split()
        if not ids:
            return []
        found = self._run(cmd.inspect_services(ids), check=False, what="docker service inspect").stdout
        return facts.parse_services(found if found.strip().startswith("[") else "[]")

    def tasks(self, services: list[ServiceFact]) -> list[TaskFact]:
        if not services:
            return []
        ids = self._run(cmd.tasks([s.id for s in services]), check=False,
                        what="docker service ps").stdout.split()
        if not ids:
            return []
        found = self._run(cmd.inspect_tasks(ids), check=False, what="docker inspect tasks").stdout
        return facts.parse_tasks(found if found.strip().startswith("[") else "[]")

    def wait(self, app: str, instance: str, timeout: float, on_wait: object = None) -> None:
        """Until every service runs its replicas, healthy, with its update done; an update that
        rolled back or paused fails at once."""
        deadline = time.monotonic() + timeout
        while True:
            services = self.services(app, instance)
            state = facts.progress(services, self.tasks(services))
            if state.failed:
                raise BackendError(f"the rollout of {app} {instance} failed: {state.failed}",
                                   "Swarm rolled it back; see `envplane logs` and `docker service ps`")
            if state.done and services:
                return
            if time.monotonic() > deadline:
                raise BackendError(f"{app} {instance} did not converge in {timeout:.0f}s: "
                                   + "; ".join(state.waiting or ("no service",)),
                                   "see `envplane status` and `envplane logs ENV SERVICE`")
            time.sleep(1.0)

    def containers(self, app: str, instance: str) -> list[ContainerFact]:
        """The instance's current tasks, as status rows (`web.1@node2`)."""
        services = self.services(app, instance)
        if not services:
            return []
        nodes = {n.id: n.hostname for n in self.nodes()}
        return facts.as_containers(services, self.tasks(services), nodes)

    def app_containers(self, app: str) -> list[ContainerFact]:
        """Every current task of the app's services on this swarm."""
        ids = self._run(cmd.all_services(app), what="docker service ls").stdout.split()
        if not ids:
            return []
        found = self._run(cmd.inspect_services(ids), check=False, what="docker service inspect").stdout
        services = facts.parse_services(found if found.strip().startswith("[") else "[]")
        nodes = {n.id: n.hostname for n in self.nodes()}
        return facts.as_containers(services, self.tasks(services), nodes)

    # Secrets and configs ----------------------------------------------------------
    def create_secret(self, name: str, labels: Mapping[str, str], text: Secret) -> bool:
        """Create a Docker secret from stdin, unless one of that name (content-named) exists."""
        if name in self.secrets_of(labels["envplane.app"], labels["envplane.instance"]):
            return False
        self._run(cmd.secret_create(name, labels), input=text.reveal(), secrets=[text],
                  what=f"create Docker secret {name}")
        return True

    def secrets_of(self, app: str, instance: str) -> list[str]:
        return names(self._run(cmd.secrets(app, instance), what="docker secret ls").stdout)

    def configs_of(self, app: str, instance: str) -> list[str]:
        return names(self._run(cmd.configs(app, instance), what="docker config ls").stdout)

    def prune(self, app: str, instance: str, keep: set[str]) -> list[str]:
        """Remove the instance's secrets and configs not in `keep`; one a task still uses stays
        (Docker refuses it) until the next deploy."""
        removed = []
        for listed, remove in ((self.secrets_of, cmd.remove_secrets), (self.configs_of, cmd.remove_configs)):
            for name in listed(app, instance):
                if name not in keep and self._run(remove([name]), check=False, what="remove").returncode == 0:
                    removed.append(name)
        return removed

    def labelled(self) -> dict[str, dict[str, str]]:
        """Every Docker secret and config of the swarm -> its labels (never a value)."""
        found: dict[str, dict[str, str]] = {}
        for kind in ("secret", "config"):
            ids = self._run(["docker", kind, "ls", "--quiet"], what=f"docker {kind} ls").stdout.split()
            if ids:
                found.update(facts.parse_labelled(self._run(["docker", kind, "inspect", *ids],
                                                            what=f"docker {kind} inspect").stdout))
        return found

    def every_service(self) -> list[ServiceFact]:
        """Every service envplane labelled on this swarm, of any app."""
        ids = self._run(cmd.all_services(), what="docker service ls").stdout.split()
        if not ids:
            return []
        found = self._run(cmd.inspect_services(ids), what="docker service inspect").stdout
        return facts.parse_services(found)

    def is_manager(self) -> bool:
        found = self._run(cmd.swarm_info(), check=False, what="docker info")
        return found.returncode == 0 and facts.parse_info(found.stdout) == ("active", True)

    # Down -------------------------------------------------------------------------
    def down(self, app: str, instance: str, purge: bool, stack: str, timeout: float = 120.0) -> Leftovers:
        """Remove the stack (only when its services carry the instance's labels), wait until its
        tasks and networks are gone, then its secrets and configs; with purge its volumes on
        every node."""
        services = self.services(app, instance)
        if services:
            foreign = [s.name for s in services if not s.name.startswith(f"{stack}_")]
            if foreign:
                raise BackendError(f"services {', '.join(foreign)} carry {app} {instance}'s labels but are "
                                   f"not of stack {stack}", "remove them by hand; envplane leaves them")
            self._run(cmd.stack_rm(stack), what=f"remove stack {stack}", timeout=120)
        nodes = self.node_engines()
        deadline = time.monotonic() + timeout
        while (self.services(app, instance) or self._networks(self.engine, app, instance)
               or any(self._node_containers(e, app, instance) for _, e in nodes)):
            if time.monotonic() > deadline:
                break
            time.sleep(1.0)
        self.prune(app, instance, set())
        if purge:
            for _, engine in nodes:
                vols = self._volumes(engine, app, instance)
                if vols:
                    run(docker_cmd.remove_volumes(vols), env=docker_env(engine), check=False,
                        what=f"remove volumes on {engine.describe()}")
        left_containers = [c for _, e in nodes for c in self._node_containers(e, app, instance)]
        left_volumes = [f"{v}@{n.hostname}" for n, e in nodes for v in self._volumes(e, app, instance)] \
            if purge else []
        return Leftovers(tuple([s.name for s in self.services(app, instance)] + left_containers),
                         tuple(self._networks(self.engine, app, instance)),
                         tuple([*left_volumes, *self.secrets_of(app, instance),
                                *self.configs_of(app, instance)]))

    @staticmethod
    def _node_containers(engine: Engine, app: str, instance: str) -> list[str]:
        listed = run(docker_cmd.containers(app, instance), env=docker_env(engine), check=False,
                     what=f"docker ps on {engine.describe()}").stdout
        return [line for line in listed.splitlines() if line.strip()]

    @staticmethod
    def _networks(engine: Engine, app: str, instance: str) -> list[str]:
        return names(run(docker_cmd.networks(app, instance), env=docker_env(engine), check=False,
                         what="docker network ls").stdout)

    @staticmethod
    def _volumes(engine: Engine, app: str, instance: str) -> list[str]:
        return names(run(docker_cmd.volumes(app, instance), env=docker_env(engine), check=False,
                         what=f"docker volume ls on {engine.describe()}").stdout)

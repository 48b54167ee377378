"""Blue-green deploys for the compose runtime (issue 5).

Start the new colour beside the serving one, wait until it is healthy, switch, let the
old colour finish its requests, then stop it. Until the switch nothing the users reach
has changed: any failure before it stops the new colour and leaves the old one serving.

The switch is a marker file the proxy's routes look at per request (see
`Route._colour_switch`); the routes themselves name both colours' ports, which stay the
same from deploy to deploy, so a switch never changes the proxy's configuration.

Stateful services are never coloured (colours.py): before the new colour starts, they
are brought up, once, in the instance's own project and waited for, as `depends_on`
would; Compose leaves them running untouched unless their own definition changed. A copy
of one running elsewhere in the instance (a colour deployed before they were split out)
is stopped first, so two never run on one data folder.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Collection, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from functools import partial
from itertools import islice
from pathlib import Path

from envplane.apply import Applier, StepHook, write_atomic
from envplane.backends.routing.caddy import colour_ports, colour_routes_for
from envplane.backends.routing.proxy import HostProxy
from envplane.backends.runtime.facts import ContainerFact
from envplane.backends.runtime.health import checks_for, proc_listening, wait_healthy
from envplane.compose.render import render, to_yaml
from envplane.errors import BackendError
from envplane.hosts.engine import Engine
from envplane.hosts.probe import reached
from envplane.plan import HOOKS_BEFORE_START, Step, env_files, hook_step, instance_dir, plan_up
from envplane.preflight import port_free
from envplane.release.colours import (
    COLOURS,
    LABEL_COLOUR,
    Colour,
    coloured,
    of_colour,
    other,
    published,
    stateful_names,
    stateful_part,
)
from envplane.spec.load import Project
from envplane.spec.models import HookName
from envplane.target import LABEL_SERVICE, Target

EPHEMERAL_RANGE = "/proc/sys/net/ipv4/ip_local_port_range"
SWITCH_OVERLAP = 0.2  # seconds both markers exist while switching; see Route._colour_switch
RESOURCE_STEPS = ("directory", "secrets", "database", "sqlite", "bucket", "s3key", "cache", "envfile")
# Pre-flight checks of the plan a colour needs too, before any resource is made; the new colour
# gets ports of its own, and starting it beside the serving one is its own trial.
PREFLIGHT_STEPS = ("servers", "user-secrets")
COMPOSE_PROJECT = "com.docker.compose.project"


@dataclass
class Switched:
    colour: Colour
    switch_seconds: float = 0.0
    urls: dict[str, str] = field(default_factory=dict)


def colour_file(root: Path, target: Target, colour: str) -> Path:
    return instance_dir(root, target) / colour / "compose.yaml"


def stateful_file(root: Path, target: Target) -> Path:
    return instance_dir(root, target) / "stateful" / "compose.yaml"


@dataclass(frozen=True)
class HostPorts:
    """The ports of the host a colour publishes on: which are free now, and its ephemeral
    range (None: Linux's default), each read on that host."""

    is_free: Callable[[int], bool] = port_free
    ephemeral: tuple[int, int] | None = None


def host_ports(engine: Engine) -> HostPorts:
    """This machine's ports, or a remote host's as its engine reads them (one helper run)."""
    if engine.remote:
        from envplane.hosts.remote import listening

        seen = listening(engine)
        return HostPorts(lambda port: not seen.taken(port, "tcp"), seen.ephemeral)
    return HostPorts(port_free, local_ephemeral())


def local_ephemeral() -> tuple[int, int] | None:
    try:
        low, high = (int(x) for x in Path(EPHEMERAL_RANGE).read_text().split())
    except (OSError, ValueError):
        return None
    return low, high


def free_ports(count: int, taken: Collection[int] = (), host: HostPorts | None = None) -> list[int]:
    """Host ports for colours, free now on their host, outside its ephemeral range (see
    colour_range): a port in that range may be taken at any moment as the local port of
    some client connection, between choosing it and publishing it."""
    host = host or HostPorts(port_free, local_ephemeral())
    low, high = colour_range(host.ephemeral)
    candidates = [p for p in range(low, high + 1) if p not in taken]
    random.shuffle(candidates)
    found = list(islice((p for p in candidates if host.is_free(p)), count))
    if len(found) < count:
        raise BackendError(f"no {count} free host port(s) in {low}-{high} for a blue-green colour",
                           "free some, or narrow net.ipv4.ip_local_port_range on the host")
    return found


def colour_range(ephemeral: tuple[int, int] | None) -> tuple[int, int]:
    """Where colours' ports are chosen, given the host's ephemeral range: above it when it
    leaves 500 ports there (61000-65535 with Linux's default 32768-60999), else the up to
    10 000 ports below it, whichever side is larger when neither has 500."""
    low, high = ephemeral or (32768, 60999)
    above = (high + 1, 65535)
    below = (max(1024, low - 10000), low - 1)
    if above[1] - above[0] + 1 >= 500:
        return above
    return below if below[1] - below[0] > above[1] - above[0] else above


@dataclass
class BlueGreen:
    project: Project
    applier: Applier
    on_step: StepHook
    health_timeout: float = 120.0
    proxy: HostProxy = field(default_factory=HostProxy)
    sleep: Callable[[float], None] = time.sleep
    listen: str = ""  # where the proxy serves the instance, once routed
    ports: HostPorts = field(default_factory=HostPorts)  # of the instance's host (see deploy)

    def deploy(self, target: Target, colour: Colour, containers: list[ContainerFact]) -> Switched:
        """Deploy `target` as `colour` (not the serving one); return once the old one is stopped.

        The caller has checked the engine and read the instance's `containers` under its
        lock (to choose the colour); they are the serving colour's ports here.
        """
        base_plan = plan_up(target, self.project.root)
        for step in base_plan.steps:
            if step.kind in PREFLIGHT_STEPS:
                self._step(step, partial(self.applier.run_step, step, target))
        self._step(Step("proxy", "run", "start the host's proxy unless it answers (blue-green "
                        "switches through it)"), lambda: "ok" if self.proxy.up().started else "skip")
        runtime = self.applier.runtime
        hooks = self.project.spec.hooks
        self.ports = host_ports(target.engine)  # the colours' ports are its host's
        for step in base_plan.steps:
            if step.kind in RESOURCE_STEPS:
                self._step(step, partial(self.applier.run_step, step, target))
        kept = self._start_stateful(target) if stateful_names(target) else None
        live = self.proxy.markers.live_dir(target.app, target.id)
        upstreams = self._upstreams(target, colour, containers)
        new = coloured(target, colour, self._host_ports(target, upstreams[colour]))
        file = colour_file(self.project.root, target, colour)
        self._step(Step("render", "create", f"write the {colour} colour's Compose file {file}", str(file)),
                   lambda: self._render(target, new, file))
        self._step(Step("clear", "run", f"remove what a failed deploy left of {new.project}"),
                   lambda: runtime.down_project(new.project))
        with self._undo_unless_switched(new) as state:
            for name in HOOKS_BEFORE_START:
                if name in hooks:
                    self._hook(name, new, file, kept)
            self._step(Step("start", "run", f"start {new.project} beside the serving colour", new.project),
                       lambda: runtime.up(new.project, file))
            self._step(Step("health", "check", f"wait until every service of {colour} is healthy"),
                       lambda: self._wait(new, lambda: self._facts(new, colour)))
            self._step(Step("routes", "check", f"route {target.domain} to both colours' ports",
                            str(target.domain)),
                       lambda: self._ensure_routes(target, upstreams, live))
            started = time.monotonic()
            self._step(Step("switch", "run", f"switch {target.domain} to {colour}", str(target.domain)),
                       lambda: self._mark(target, live, colour))
            state["switched"] = True
            switch_seconds = time.monotonic() - started
            if "post_deploy" in hooks:
                try:
                    self._hook("post_deploy", new, file, kept)
                except BackendError:
                    if self._facts(target, other(colour)):  # the old colour still runs: back to it
                        self._mark(target, live, other(colour))
                        state["switched"] = False
                    raise
        self._step(Step("drain", "run", f"let the old colour finish its requests "
                        f"({target.env.drain_seconds:g} s)"),
                   lambda: self.sleep(target.env.drain_seconds))
        self._step(Step("stop", "run", f"stop every colour of {target.id} but {colour}"),
                   lambda: self._stop_others(target, new.project, kept))
        return Switched(colour, switch_seconds, target.urls(self.listen))

    def _start_stateful(self, target: Target) -> Target:
        """The stateful services up once in the instance's own project, and healthy."""
        kept = stateful_part(target)
        names = ", ".join(sorted(stateful_names(target)))
        file = stateful_file(self.project.root, target)
        runtime = self.applier.runtime
        self._step(Step("render", "create", f"write the stateful services' Compose file {file}", str(file)),
                   lambda: self._render(target, kept, file))
        self._step(Step("stateful", "run", f"stop any copy of {names} running outside {kept.project}"),
                   lambda: self._stop_copies(target, kept))
        # Without --remove-orphans: services of an instance started by `up` keep serving
        # from this project until the switch; `_stop_others` removes them after it.
        self._step(Step("start", "run", f"start {names} once in {kept.project} (unchanged ones keep "
                        "running)", kept.project),
                   lambda: runtime.up(kept.project, file, remove_orphans=False))
        self._step(Step("health", "check", f"wait until {names} are healthy"),
                   lambda: self._wait(kept, lambda: self._in_project(target, kept)))
        return kept

    def _wait(self, target: Target, facts: Callable[[], list[ContainerFact]]) -> None:
        """Until every service of `target` is healthy, probed where it runs (its host)."""
        with reached(target.engine, checks_for(target)) as checks:
            wait_healthy(checks, facts, self.health_timeout, self.applier.on_wait,
                         tail=lambda fact: self.applier.on_engine(target).last_lines(fact.name),
                         listens=proc_listening if target.engine.local else lambda fact: None)

    def _stop_copies(self, target: Target, kept: Target) -> str:
        once = stateful_names(target)
        copies = [c.id for c in self.applier.runtime.containers(target.app, target.id)
                  if c.state == "running" and c.labels.get(LABEL_SERVICE) in once
                  and c.labels.get(COMPOSE_PROJECT) != kept.project]
        if not copies:
            return "skip"
        self.applier.runtime.stop(copies)
        return "ok"

    def _in_project(self, target: Target, project: Target) -> list[ContainerFact]:
        return [c for c in self.applier.runtime.containers(target.app, target.id)
                if c.labels.get(COMPOSE_PROJECT) == project.project]

    def _hook(self, name: HookName, new: Target, file: Path, kept: Target | None) -> None:
        """A hook of the spec, in a one-off container of the new colour; a hook of a
        stateful service runs in its one running container (never a copy of it)."""
        hook = self.project.spec.hooks[name]
        runtime = self.applier.runtime
        if kept is not None and hook.service in stateful_names(kept):
            action = partial(runtime.exec_in, kept.project, stateful_file(self.project.root, kept),
                             hook.service, hook.command)
        else:
            action = partial(runtime.run_once, new.project, file, hook.service, hook.command)
        self._step(hook_step(name, hook), action)

    def _upstreams(self, target: Target, colour: Colour,
                   containers: list[ContainerFact]) -> dict[str, dict[str, int]]:
        """colour -> public service -> host port. Stable across deploys, so a switch never
        changes the proxy's config: the serving colour keeps the ports it runs on, the new
        one reuses its ports from the routes while they are free."""
        public = [s for s in target.services if s.public is not None and s.public_host_port is not None]
        known = colour_ports(self.proxy.instance(target.app, target.id))
        running = {(c.labels.get(LABEL_COLOUR), c.labels.get(LABEL_SERVICE)): c
                   for c in containers if c.state == "running"}
        chosen: dict[str, dict[str, int]] = {c: {} for c in COLOURS}
        missing: list[tuple[str, str]] = []
        for c in COLOURS:
            for service in public:
                assert service.public is not None
                fact = running.get((c, service.name))
                if fact is not None:  # it runs: the port it publishes, whatever the routes say
                    port = next((h for p, h, _ in fact.ports if p == service.public.port), None)
                else:
                    port = known.get(c, {}).get(service.name)
                if port is None or (c == colour and not self.ports.is_free(port)):
                    missing.append((c, service.name))
                else:
                    chosen[c][service.name] = port
        taken = {p for ports in chosen.values() for p in ports.values()}
        fresh = iter(free_ports(len(missing), taken, self.ports))
        for colour_name, name in missing:
            chosen[colour_name][name] = next(fresh)
        return chosen

    def _host_ports(self, target: Target, public: dict[str, int]) -> dict[tuple[str, int], int]:
        wanted = published(target)
        fixed = {(s.name, s.public.port): public[s.name] for s in target.services
                 if s.public is not None and s.name in public}
        others = [key for key in wanted if key not in fixed]
        return {**fixed, **dict(zip(others, free_ports(len(others), set(fixed.values()), self.ports),
                                    strict=True))}

    def _ensure_routes(self, target: Target, upstreams: dict[str, dict[str, int]], live: str) -> str:
        """Set the colour routes (recorded for `proxy up`). Caddy's config changes only
        when they are missing or name other ports (the first blue-green deploy of an
        instance): the one config change, before any switch."""
        routed = self.proxy.set_routes(target.app, target.id, colour_routes_for(target, upstreams, live))
        self.listen = routed.listen
        return "ok" if routed.changed else "skip"

    def _mark(self, target: Target, live: str, colour: str) -> None:
        """Make `colour` the live one: its marker first, a pause, then the other's removed,
        so at every instant at least one marker exists. Recorded for `proxy up`."""
        self.proxy.markers.switch(target.app, target.id, colour, other(colour), SWITCH_OVERLAP)
        self.proxy.record_live(target.app, target.id, colour)

    def _render(self, target: Target, new: Target, file: Path) -> None:
        base = self.project.compose[0].file.parent
        write_atomic(file, to_yaml(render(new, base, env_files(self.project.root, target))))

    def _facts(self, target: Target, colour: str) -> list[ContainerFact]:
        return of_colour(self.applier.runtime.containers(target.app, target.id), colour)

    def _stop_others(self, target: Target, keep: str, kept: Target | None) -> None:
        runtime = self.applier.runtime
        containers = runtime.containers(target.app, target.id)
        projects = {c.labels.get(COMPOSE_PROJECT) for c in containers}
        stateful = kept.project if kept else None
        for name in sorted(p for p in projects if p and p not in (keep, stateful)):
            runtime.down_project(name)
        if kept is not None and any(c.labels.get(COMPOSE_PROJECT) == stateful
                                    and c.labels.get(LABEL_SERVICE) not in stateful_names(kept)
                                    for c in containers):
            # What `up` ran there before the first blue-green deploy: Compose removes it as
            # orphans and leaves the stateful services, unchanged, running.
            runtime.up(kept.project, stateful_file(self.project.root, kept))

    @contextmanager
    def _undo_unless_switched(self, new: Target) -> Iterator[dict[str, bool]]:
        state = {"switched": False}
        try:
            yield state
        except BaseException:
            if not state["switched"]:
                with suppress(BackendError):  # the deploy's own error is the one to report
                    self.applier.runtime.down_project(new.project)
            raise

    def _step(self, step: Step, action: Callable[[], object]) -> None:
        started = time.monotonic()
        self.on_step(step, "start", 0.0)
        try:
            result = action()
        except KeyboardInterrupt:
            self.on_step(step, "interrupted", time.monotonic() - started)
            raise
        except BaseException:
            self.on_step(step, "failed", time.monotonic() - started)
            raise
        self.on_step(step, "skip" if result == "skip" else "ok", time.monotonic() - started)

"""Blue-green deploys for the compose runtime (issue 5).

Start the new colour beside the serving one, wait until it is healthy, switch, let the
old colour finish its requests, then stop it. Until the switch nothing the users reach
has changed: any failure before it stops the new colour and leaves the old one serving.

The switch is a marker file the proxy's routes look at per request (see
`Route._colour_switch`); the routes themselves name both colours' ports, which stay the
same from deploy to deploy, so a switch never changes the proxy's configuration.
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

from envplane.apply import Applier, StepHook, port_free, write_atomic
from envplane.backends.routing import caddy_process
from envplane.backends.routing.caddy import CaddyAdmin, colour_ports, colour_routes_for
from envplane.backends.runtime.facts import ContainerFact
from envplane.backends.runtime.health import checks_for, wait_healthy
from envplane.compose.render import render, to_yaml
from envplane.errors import BackendError
from envplane.plan import HOOKS_BEFORE_START, Step, env_files, hook_step, instance_dir, plan_up
from envplane.release.colours import (
    COLOURS,
    LABEL_COLOUR,
    Colour,
    coloured,
    of_colour,
    other,
    published,
)
from envplane.spec.load import Project
from envplane.spec.models import HookName
from envplane.target import LABEL_SERVICE, Target

EPHEMERAL_RANGE = "/proc/sys/net/ipv4/ip_local_port_range"
SWITCH_OVERLAP = 0.2  # seconds both markers exist while switching; see Route._colour_switch
RESOURCE_STEPS = ("directory", "secrets", "database", "sqlite", "bucket", "cache", "envfile")
COMPOSE_PROJECT = "com.docker.compose.project"


@dataclass
class Switched:
    colour: Colour
    switch_seconds: float = 0.0
    urls: dict[str, str] = field(default_factory=dict)


def colour_file(root: Path, target: Target, colour: str) -> Path:
    return instance_dir(root, target) / colour / "compose.yaml"


def free_ports(count: int, taken: Collection[int] = ()) -> list[int]:
    """Host ports for colours, free now, above the kernel's ephemeral range when it leaves
    room (61000-65535 by default): a port in that range may be taken at any moment as
    the local port of some client connection, between choosing it and publishing it."""
    low, high = _colour_range()
    candidates = [p for p in range(low, high + 1) if p not in taken]
    random.shuffle(candidates)
    found = list(islice((p for p in candidates if port_free(p)), count))
    if len(found) < count:
        raise BackendError(f"no {count} free host port(s) in {low}-{high} for a blue-green colour",
                           "free some, or widen the range above net.ipv4.ip_local_port_range")
    return found


def _colour_range() -> tuple[int, int]:
    try:
        _, high = (int(x) for x in Path(EPHEMERAL_RANGE).read_text().split())
    except (OSError, ValueError):
        high = 60999  # Linux's default when the setting cannot be read
    return (high + 1, 65535) if 65535 - high >= 500 else (20000, 29999)


@dataclass
class BlueGreen:
    project: Project
    applier: Applier
    on_step: StepHook
    health_timeout: float = 120.0
    caddy: CaddyAdmin = field(default_factory=CaddyAdmin)
    sleep: Callable[[float], None] = time.sleep

    def deploy(self, target: Target, colour: Colour, containers: list[ContainerFact]) -> Switched:
        """Deploy `target` as `colour` (not the serving one); return once the old one is stopped.

        The caller has checked the engine and read the instance's `containers` under its
        lock (to choose the colour); they are the serving colour's ports here.
        """
        if not self.caddy.answers():
            raise BackendError(
                f"env {target.env.name} deploys blue-green, which switches through the proxy, "
                f"and no proxy answers at {self.caddy.admin}",
                "start it with `envplane proxy up`, or set "
                f"environments.{target.env.name}.strategy: recreate")
        runtime = self.applier.runtime
        hooks = self.project.spec.hooks
        base_plan = plan_up(target, self.project.root)
        for step in base_plan.steps:
            if step.kind in RESOURCE_STEPS:
                self._step(step, partial(self.applier.run_step, step, target))
        live = caddy_process.live_dir(target.app, target.id)
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
                    self._hook(name, new, file)
            self._step(Step("start", "run", f"start {new.project} beside the serving colour", new.project),
                       lambda: runtime.up(new.project, file))
            self._step(Step("health", "check", f"wait until every service of {colour} is healthy"),
                       lambda: wait_healthy(checks_for(new), lambda: self._facts(new, colour),
                                            self.health_timeout))
            self._step(Step("routes", "check", f"route {target.domain} to both colours' ports",
                            str(target.domain)),
                       lambda: self._ensure_routes(target, upstreams, live))
            started = time.monotonic()
            self._step(Step("switch", "run", f"switch {target.domain} to {colour}", str(target.domain)),
                       lambda: self._mark(live, colour))
            state["switched"] = True
            switch_seconds = time.monotonic() - started
            if "post_deploy" in hooks:
                try:
                    self._hook("post_deploy", new, file)
                except BackendError:
                    if self._facts(target, other(colour)):  # the old colour still runs: back to it
                        self._mark(live, other(colour))
                        state["switched"] = False
                    raise
        self._step(Step("drain", "run", f"let the old colour finish its requests "
                        f"({target.env.drain_seconds:g} s)"),
                   lambda: self.sleep(target.env.drain_seconds))
        self._step(Step("stop", "run", f"stop every colour of {target.id} but {colour}"),
                   lambda: self._stop_others(target, new.project))
        return Switched(colour, switch_seconds, new.public_urls())

    def _hook(self, name: HookName, new: Target, file: Path) -> None:
        """A hook of the spec, in a one-off container of the new colour."""
        hook = self.project.spec.hooks[name]
        self._step(hook_step(name, hook),
                   partial(self.applier.runtime.run_once, new.project, file, hook.service, hook.command))

    def _upstreams(self, target: Target, colour: Colour,
                   containers: list[ContainerFact]) -> dict[str, dict[str, int]]:
        """colour -> public service -> host port. Stable across deploys, so a switch never
        changes the proxy's config: the serving colour keeps the ports it runs on, the new
        one reuses its ports from the routes while they are free."""
        public = [s for s in target.services if s.public is not None and s.public_host_port is not None]
        known = colour_ports(self.caddy.instance_routes(target.app, target.id))
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
                if port is None or (c == colour and not port_free(port)):
                    missing.append((c, service.name))
                else:
                    chosen[c][service.name] = port
        taken = {p for ports in chosen.values() for p in ports.values()}
        fresh = iter(free_ports(len(missing), taken))
        for colour_name, name in missing:
            chosen[colour_name][name] = next(fresh)
        return chosen

    def _host_ports(self, target: Target, public: dict[str, int]) -> dict[tuple[str, int], int]:
        wanted = published(target)
        fixed = {(s.name, s.public.port): public[s.name] for s in target.services
                 if s.public is not None and s.name in public}
        others = [key for key in wanted if key not in fixed]
        return {**fixed, **dict(zip(others, free_ports(len(others), set(fixed.values())), strict=True))}

    def _ensure_routes(self, target: Target, upstreams: dict[str, dict[str, int]], live: Path) -> str:
        """Set the colour routes when they are missing or name other ports (the first
        blue-green deploy of an instance): the one config change, before any switch."""
        current = self.caddy.instance_routes(target.app, target.id)
        if colour_ports(current) == upstreams:
            return "skip"
        live.mkdir(parents=True, exist_ok=True)
        routes = colour_routes_for(target, upstreams, str(live))
        self.caddy.put_routes(target.app, target.id, [r.as_caddy() for r in routes])
        return "ok"

    def _mark(self, live: Path, colour: str) -> None:
        """Make `colour` the live one: its marker first, a pause, then the other's removed,
        so at every instant at least one marker exists."""
        live.mkdir(parents=True, exist_ok=True)
        (live / colour).touch()
        if (live / other(colour)).exists():
            self.sleep(SWITCH_OVERLAP)
            (live / other(colour)).unlink(missing_ok=True)

    def _render(self, target: Target, new: Target, file: Path) -> None:
        base = self.project.compose[0].file.parent
        write_atomic(file, to_yaml(render(new, base, env_files(self.project.root, target))))

    def _facts(self, target: Target, colour: str) -> list[ContainerFact]:
        return of_colour(self.applier.runtime.containers(target.app, target.id), colour)

    def _stop_others(self, target: Target, keep: str) -> None:
        projects = {c.labels.get(COMPOSE_PROJECT) for c in
                    self.applier.runtime.containers(target.app, target.id)}
        for name in sorted(p for p in projects if p and p != keep):
            self.applier.runtime.down_project(name)

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
        except BaseException:
            self.on_step(step, "failed", time.monotonic() - started)
            raise
        self.on_step(step, "skip" if result == "skip" else "ok", time.monotonic() - started)

"""Blue-green deploys for the compose runtime (issue 5).

Start the new colour beside the serving one, wait until it is healthy, switch the
proxy's routes in one change, let the old colour finish its requests, then stop it.
Until the switch nothing the users reach has changed: any failure before it stops the
new colour and leaves the old one serving.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

from envplane.apply import Applier, StepHook, write_atomic
from envplane.backends.routing.caddy import CaddyAdmin
from envplane.backends.runtime.health import checks_for, wait_healthy
from envplane.colours import LABEL_COLOUR, Colour, coloured, published
from envplane.compose.render import render, to_yaml
from envplane.errors import BackendError
from envplane.plan import Step, env_files, hook_step, instance_dir, plan_up
from envplane.spec.load import Project
from envplane.target import Target

RESOURCE_STEPS = ("directory", "secrets", "database", "sqlite", "bucket", "cache", "envfile")
COMPOSE_PROJECT = "com.docker.compose.project"


@dataclass
class Switched:
    colour: Colour
    switch_seconds: float = 0.0
    urls: dict[str, str] = field(default_factory=dict)


def colour_file(root: Path, target: Target, colour: str) -> Path:
    return instance_dir(root, target) / colour / "compose.yaml"


def free_ports(count: int) -> list[int]:
    """Host ports free right now, picked by the kernel (held together so they differ)."""
    sockets = []
    try:
        for _ in range(count):
            s = socket.socket()
            s.bind(("0.0.0.0", 0))
            sockets.append(s)
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


@dataclass
class BlueGreen:
    project: Project
    applier: Applier
    on_step: StepHook
    health_timeout: float = 120.0
    caddy: CaddyAdmin = field(default_factory=CaddyAdmin)
    sleep: Callable[[float], None] = time.sleep

    def deploy(self, target: Target, colour: Colour) -> Switched:
        """Deploy `target` as `colour` (not the serving one); return once the old one is stopped."""
        if not self.caddy.answers():
            raise BackendError(
                f"env {target.env.name} deploys blue-green, which switches through the proxy, "
                f"and no proxy answers at {self.caddy.admin}",
                "start it with `envplane proxy up`, or set "
                f"environments.{target.env.name}.strategy: recreate")
        runtime = self.applier.runtime
        runtime.check()
        hooks = self.project.spec.hooks
        base_plan = plan_up(target, self.project.root)
        for step in base_plan.steps:
            if step.kind in RESOURCE_STEPS:
                self._step(step, partial(self.applier.run_step, step, target))
        ports = published(target)
        new = coloured(target, colour, dict(zip(ports, free_ports(len(ports)), strict=True)))
        file = colour_file(self.project.root, target, colour)
        self._step(Step("render", "create", f"write the {colour} colour's Compose file {file}", str(file)),
                   lambda: self._render(target, new, file))
        self._step(Step("clear", "run", f"remove what a failed deploy left of {new.project}"),
                   lambda: runtime.down_project(new.project))
        with self._undo_unless_switched(new) as state:
            for name in ("pre_deploy", "migrate"):
                if name in hooks:
                    hook = hooks[name]
                    self._step(hook_step(name, hook),
                               partial(runtime.run_once, new.project, file, hook.service, hook.command))
            self._step(Step("start", "run", f"start {new.project} beside the serving colour", new.project),
                       lambda: runtime.up(new.project, file))
            self._step(Step("health", "check", f"wait until every service of {colour} is healthy"),
                       lambda: wait_healthy(checks_for(new), lambda: self._facts(new, colour),
                                            self.health_timeout))
            before = self.caddy.instance_routes(target.app, target.id)
            started = time.monotonic()
            self._step(Step("switch", "run", f"switch {target.domain} to {colour}", str(target.domain)),
                       lambda: self.caddy.set_routes(new))
            state["switched"] = True
            switch_seconds = time.monotonic() - started
            if "post_deploy" in hooks:
                hook = hooks["post_deploy"]
                try:
                    self._step(hook_step("post_deploy", hook),
                               lambda: runtime.run_once(new.project, file, hook.service, hook.command))
                except BackendError:
                    if before:  # the old colour still runs: give the users back to it
                        self.caddy.put_routes(target.app, target.id, before)
                        state["switched"] = False
                    raise
        self._step(Step("drain", "run", f"let the old colour finish its requests "
                        f"({target.env.drain_seconds:g} s)"),
                   lambda: self.sleep(target.env.drain_seconds))
        self._step(Step("stop", "run", f"stop every colour of {target.id} but {colour}"),
                   lambda: self._stop_others(target, new.project))
        return Switched(colour, switch_seconds, new.public_urls())

    def _render(self, target: Target, new: Target, file: Path) -> None:
        base = self.project.compose[0].file.parent
        write_atomic(file, to_yaml(render(new, base, env_files(self.project.root, target))))

    def _facts(self, target: Target, colour: str) -> list[Any]:
        return [c for c in self.applier.runtime.containers(target.app, target.id)
                if c.labels.get(LABEL_COLOUR) == colour]

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

"""Run a Plan against the world. The only module that joins plans to backends.

Every step is idempotent (it looks before it acts), so a run killed at any point is
finished by the next `up`: the same project, names and labels converge on the same
containers, networks and volumes instead of duplicating them.
"""

from __future__ import annotations

import os
import shutil
import socket
import tempfile
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from envplane.backends.database.change import Change
from envplane.backends.routing import caddy_process
from envplane.backends.routing.caddy import CaddyAdmin
from envplane.backends.runtime.base import Leftovers, Runtime
from envplane.backends.runtime.compose import ComposeRuntime
from envplane.backends.runtime.health import checks_for, wait_healthy
from envplane.backends.secrets import open_secret_store
from envplane.compose.render import render, to_yaml
from envplane.errors import BackendError, UsageError
from envplane.plan import Plan, Step, compose_file, env_files, instance_dir
from envplane.provision import Provisioner, Servers, store_kind, write_env_file
from envplane.release.colours import running_colours
from envplane.spec.load import Project
from envplane.target import Target

StepHook = Callable[[Step, str, float], None]  # (step, "start" | "ok" | "skip" | "failed", seconds)


@dataclass
class Outcome:
    steps: list[tuple[Step, str, float]] = field(default_factory=list)
    urls: dict[str, str] = field(default_factory=dict)


@dataclass
class Applier:
    project: Project
    runtime: Runtime = field(default_factory=ComposeRuntime)
    environ: Mapping[str, str] = field(default_factory=lambda: dict(os.environ))
    on_step: StepHook = lambda step, state, seconds: None
    health_timeout: float = 120.0
    _provisioners: dict[str, Provisioner] = field(default_factory=dict)

    def up(self, plan: Plan) -> Outcome:
        target = plan.target
        if target.env.runtime != "compose":
            raise BackendError(
                f"env {target.env.name} uses the {target.env.runtime} runtime; "
                "`up` drives compose here",
                "run `envplane up local` for the process runtime",
            )
        outcome = Outcome()
        self.runtime.check()
        if target.env.strategy == "blue-green":
            self._refuse_over_colours(target)
        for step in plan.steps:
            if step.kind == "lock":  # lifecycle.up holds the instance's lock around this
                self._report(outcome, step, "ok", 0.0)
                continue
            started = time.monotonic()
            self.on_step(step, "start", 0.0)
            try:
                state = self._run(step, target)
            except BackendError:
                self._report(outcome, step, "failed", time.monotonic() - started)
                raise
            self._report(outcome, step, state, time.monotonic() - started)
        outcome.urls = target.public_urls()
        return outcome

    def _refuse_over_colours(self, target: Target) -> None:
        """`up` recreates in place; over a running blue-green colour it would start a second
        copy beside it and take its routes. Releases move such an instance."""
        running = sorted(running_colours(self.runtime.containers(target.app, target.id)))
        if running:
            raise UsageError(
                f"{target.app} {target.id} runs blue-green (colour {', '.join(running)}); "
                "`up` would start a second copy beside it",
                f"deploy with `envplane promote VERSION --to {target.env.name}` or `envplane rollback "
                f"{target.env.name}`, or `envplane down {target.env.name}` first")

    def _report(self, outcome: Outcome, step: Step, state: str, seconds: float) -> None:
        outcome.steps.append((step, state, seconds))
        self.on_step(step, state, seconds)

    def _run(self, step: Step, target: Target) -> str:
        if step.action == "noop":
            return "skip"
        file = compose_file(self.project.root, target)
        match step.kind:
            case "isolation" | "record":
                return "ok"  # checked when the plan was made; recorded by the caller
            case "directory":
                Path(step.resource).mkdir(parents=True, exist_ok=True)
            case "secrets" | "database" | "sqlite" | "bucket" | "cache":
                self._provision(target, step.kind)
            case "envfile":
                for service, path in env_files(self.project.root, target).items():
                    write_env_file(Path(path), self._provisioner(target).variables(target.service(service)))
            case "render":
                base = self.project.compose[0].file.parent
                write_atomic(file, to_yaml(render(target, base, env_files(self.project.root, target))))
            case "build":
                self.runtime.build(target.project, file)
            case "ports":
                self._check_ports(target)
            case "start":
                self.runtime.up(target.project, file)
            case kind if kind.startswith("hook:"):
                self.runtime.run_once(target.project, file, step.resource, step.command[-1])
            case "health":
                checks = [c for c in checks_for(target) if c.service == step.resource]
                wait_healthy(
                    checks,
                    lambda: self.runtime.containers(target.app, target.id),
                    self.health_timeout,
                )
            case "route":
                # Traefik routes by the rendered labels; a local Caddy gets the routes here.
                caddy = CaddyAdmin()
                if not caddy.answers():
                    return "skip"
                caddy.set_routes(target)
            case _:
                raise AssertionError(f"plan step {step.kind!r} has no executor")
        return "ok"

    def run_step(self, step: Step, target: Target) -> str:
        """Run one step of a plan on its own (blue-green runs the resource steps so)."""
        return self._run(step, target)

    def provision_only(self, plan: Plan) -> list[Change]:
        """Run just the resource steps of a plan (`envplane provision`)."""
        kinds = {"secrets", "database", "sqlite", "bucket", "cache", "envfile"}
        for step in plan.steps:
            if step.kind in kinds:
                self._run(step, plan.target)
        provisioner = self._provisioners.get(plan.target.id)
        return provisioner.changes if provisioner else []

    def _provisioner(self, target: Target) -> Provisioner:
        if self._provisioners.get(target.id) is None:
            self._provisioners[target.id] = Provisioner(
                target, Servers.for_target(target, self.environ),
                open_secret_store(store_kind(target, self.environ), self.project.root, self.environ),
                self.project.root)
        return self._provisioners[target.id]

    def _provision(self, target: Target, kind: str) -> None:
        p = self._provisioner(target)
        if kind == "secrets":
            if target.database:
                p.password("postgres")
            if target.redis_prefix:
                p.password("redis")
        elif kind in ("database", "sqlite"):
            p.database()
        elif kind == "bucket":
            p.bucket()
        else:
            p.cache()

    def _check_ports(self, target: Target) -> None:
        """Fail before starting anything when another app, instance or program holds a port.

        The isolation check covers this app's instances; this covers everything else
        on the host (other apps' previews, a database someone started by hand).
        """
        for service in target.services:
            for port in service.ports:
                if port.published is None:
                    continue
                users = self.runtime.port_users(port.published, port.protocol)
                others = [u for u in users if (u[1], u[2]) != (target.app, target.id)]
                if others:
                    name, app, instance = others[0]
                    owner = f"app {app}, instance {instance}" if app else "not an envplane container"
                    raise BackendError(
                        f"host port {port.published}/{port.protocol} of {service.name} is taken by "
                        f"container {name} ({owner})",
                        f"free it, or set environments.{target.env.name}.ports.{service.name}."
                        f"{port.target} (or port_base) in envplane.yaml",
                    )
                if not users and port.protocol == "tcp" and not port_free(port.published):
                    raise BackendError(
                        f"host port {port.published}/tcp of {service.name} is in use by another program",
                        f"free it, or set environments.{target.env.name}.ports.{service.name}."
                        f"{port.target} in envplane.yaml",
                    )

    def down(self, target: Target, purge: bool) -> Leftovers:
        """Remove the instance (lifecycle.down holds its lock around this)."""
        self.runtime.check()
        caddy = CaddyAdmin()
        if caddy.answers():
            caddy.remove_routes(target.app, target.id)
        shutil.rmtree(caddy_process.live_dir(target.app, target.id), ignore_errors=True)
        left = self.runtime.down(target.app, target.id, purge)
        folder = instance_dir(self.project.root, target)
        if folder.exists():
            shutil.rmtree(folder)  # its rendered file and env files go with it
        if purge:
            if target.database or target.bucket or target.redis_prefix:
                # resources, then the instance's secrets (an app without resources has none)
                self._provisioner(target).purge()
            remove_data_path(target)
        return left


def port_free(port: int) -> bool:
    with socket.socket() as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(("0.0.0.0", port))
        except OSError:
            return False
    return True


def write_atomic(path: Path, text: str) -> None:
    """Write via a temporary file and rename, so a killed run never leaves half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def remove_data_path(target: Target) -> None:
    path = Path(target.data_path)
    # A data path is the instance's own (the isolation check keeps them apart), but
    # refuse the obviously wrong ones all the same.
    if path.is_absolute() and len(path.parts) < 3:
        raise BackendError(f"refusing to delete {path}: too close to the root")
    if path.exists():
        shutil.rmtree(path)

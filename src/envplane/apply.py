"""Run a Plan against the world. The only module that joins plans to backends.

Every step is idempotent (it looks before it acts), so a run killed at any point is
finished by the next `up`: the same project, names and labels converge on the same
containers, networks and volumes instead of duplicating them.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from functools import partial
from pathlib import Path, PurePosixPath
from types import MappingProxyType
from typing import Any

from envplane import deployed
from envplane.backends.database.change import Change
from envplane.backends.routing.caddy import routes_for
from envplane.backends.routing.proxy import HostProxy
from envplane.backends.runtime.base import Leftovers, Runtime
from envplane.backends.runtime.compose import ComposeRuntime
from envplane.backends.runtime.facts import ContainerFact
from envplane.backends.runtime.health import checks_for, proc_listening, wait_healthy
from envplane.backends.secrets import open_secret_store
from envplane.compose.render import render, to_yaml
from envplane.datapath import RULE_HINT, not_owned
from envplane.errors import BackendError, UsageError
from envplane.events import StepHook, WaitHook, no_wait
from envplane.hosts import remote
from envplane.hosts.probe import reached
from envplane.plan import Plan, Step, compose_file, env_files, instance_dir, trial_file
from envplane.preflight import Preflight, previous_file, proof, trial_model
from envplane.private import make_dirs
from envplane.provision import (
    Provisioner,
    Servers,
    check_servers,
    check_user_secrets,
    store_kind,
    write_env_file,
)
from envplane.release.colours import running_colours
from envplane.spec.load import Project
from envplane.target import Target

NOTHING_TO_PROTECT = "nothing running to protect"  # why a new or stopped instance's up skips the trial
TRAEFIK_LISTEN = "ENVPLANE_TRAEFIK_LISTEN"  # where the user's Traefik serves HTTP (routing: traefik)
# An Applier given no environ reads the process's variables under its project's own: the
# platform's file store or the server's principal travel with the project, never through
# os.environ, which every app served by one process shares.
_THE_PROJECTS: Mapping[str, str] = MappingProxyType({})

__all__ = ["Applier", "Outcome", "StepHook", "WaitHook"]


@dataclass
class Outcome:
    steps: list[tuple[Step, str, float]] = field(default_factory=list)
    urls: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Removal:
    """What `down` could not remove: the engine's leftovers and, after a purge, the resources
    whose server was missing or down (their secrets are kept so a later purge can drop them)."""

    left: Leftovers
    kept: tuple[str, ...] = ()  # "redis: Redis at ... does not answer"


@dataclass
class Applier:
    project: Project
    runtime: Runtime = field(default_factory=ComposeRuntime)  # replaced by on_engine for another host
    environ: Mapping[str, str] = field(default_factory=lambda: _THE_PROJECTS)
    on_step: StepHook = lambda step, state, seconds: None
    on_wait: WaitHook = no_wait  # what a health step waits on, at every try
    health_timeout: float = 120.0
    proxy: HostProxy = field(default_factory=HostProxy)
    _provisioners: dict[str, Provisioner] = field(default_factory=dict)
    _proxy_listen: str | None = None  # where the proxy serves this instance, once routed
    _trials: dict[str, dict[str, Any]] = field(default_factory=dict)  # instance -> its trial file's data
    _images: dict[str, dict[str, str]] = field(default_factory=dict)  # instance -> service -> image id
    # instance -> its last file, pinned to its images, and the ids of the containers it ran
    # (its file, pinned by _restore only when needed: a YAML round trip that most `up`s never use)
    _previous: dict[str, tuple[str, dict[str, str], frozenset[str]]] = field(default_factory=dict)
    _started_proves: dict[str, tuple[Path, str]] = field(default_factory=dict)  # skipped trials' proofs
    _listed: dict[str, list[ContainerFact]] = field(default_factory=dict)  # instance -> its containers
    _digests: dict[str, str] = field(default_factory=dict)  # instance -> what its `start` gave Compose
    _rendered: dict[str, dict[str, Any]] = field(default_factory=dict)  # instance -> its rendered file
    _prove_always: bool = False  # run the trial even when nothing runs (`release`'s own pre-flight)

    def __post_init__(self) -> None:
        if self.environ is _THE_PROJECTS:
            self.environ = {**os.environ, **self.project.environ}

    def up(self, plan: Plan) -> Outcome:
        target = plan.target
        if target.env.runtime == "kubernetes":
            from envplane.kubernetes import apply as kubernetes

            return kubernetes.up(self, plan)
        if target.env.runtime == "swarm":
            from envplane.swarm import apply as swarm

            return swarm.up(self, plan)
        if target.env.runtime != "compose":
            raise BackendError(
                f"env {target.env.name} uses the {target.env.runtime} runtime; "
                "`up` drives compose here",
                "run `envplane up local` for the process runtime",
            )
        outcome = Outcome()
        self._check_engine(target)
        if target.env.strategy == "blue-green":
            self._refuse_over_colours(target)
        for step in plan.steps:
            if step.kind == "lock":  # lifecycle.up holds the instance's lock around this
                self._report(outcome, step, "ok", 0.0)
                continue
            try:
                self._timed(outcome, step, target)
            except BackendError as exc:
                if step.kind in ("start", "health"):
                    self._restore(outcome, target, exc)
                raise
        if target.id in self._started_proves:  # started and healthy: the next up of it needs no trial
            write_atomic(*self._started_proves.pop(target.id))
        if target.id in self._digests:  # started and healthy: the same again needs no Compose
            self._stamp(target, self._digests.pop(target.id))
        if target.env.routing != "caddy" and not target.engine.remote \
                and self.proxy.routes_instance(target.app, target.id):
            self.proxy.remove(target.app, target.id)  # routed by Caddy before the switch: stale
        listen = self._proxy_listen or self._traefik_listen(target)
        engine_ports = None if listen else self._engine_ports(target)
        outcome.urls = target.urls(listen, engine_ports)
        return outcome

    def _traefik_listen(self, target: Target) -> str | None:
        """Where the user's Traefik serves HTTP (routing: traefik): ENVPLANE_TRAEFIK_LISTEN, a
        remote host's `proxy:`, else port 80 — envplane neither starts nor asks it."""
        if target.env.routing != "traefik" or not target.domain:
            return None
        if target.engine.remote:
            return target.engine.proxy_listen or "0.0.0.0:80"
        return self.environ.get(TRAEFIK_LISTEN) or "0.0.0.0:80"

    def on_engine(self, target: Target) -> Runtime:
        """The runtime of the instance's engine (spec `hosts:`), made on first use."""
        if getattr(self.runtime, "engine", target.engine) != target.engine:
            self.runtime = ComposeRuntime(target.engine)
        return self.runtime

    def _check_engine(self, target: Target) -> None:
        """The engine answers and has Compose, before anything changes: `up` runs Compose.
        An instance that Compose started healthy before (its stamp) asks at its first Compose
        command: an `up` that changes nothing runs none, and without Compose nothing of the
        running instance can be touched."""
        runtime = self.on_engine(target)
        runtime.check()
        if isinstance(runtime, ComposeRuntime) and not self._stamp_file(target).exists():
            runtime.compose_prefix()

    def _engine_ports(self, target: Target) -> dict[str, int]:
        """service -> host port the engine chose for its public port (envs that let it choose)."""
        wanted = {s.name: s.public.port for s in target.services
                  if s.public is not None and s.public_host_port is None}
        if not wanted:
            return {}
        return {c.service: host for c in self.on_engine(target).containers(target.app, target.id)
                for port, host, protocol in c.ports if protocol == "tcp" and wanted.get(c.service) == port}

    def _refuse_over_colours(self, target: Target) -> None:
        """`up` recreates in place; over a running blue-green colour it would start a second
        copy beside it and take its routes. Releases move such an instance."""
        running = sorted(running_colours(self.on_engine(target).containers(target.app, target.id)))
        if running:
            raise UsageError(
                f"{target.app} {target.id} runs blue-green (colour {', '.join(running)}); "
                "`up` would start a second copy beside it",
                f"deploy with `envplane promote VERSION --to {target.env.name}` or `envplane rollback "
                f"{target.env.name}`, or `envplane down {target.env.name}` first")

    def _timed(self, outcome: Outcome, step: Step, target: Target) -> None:
        def tidy() -> None:  # a second Ctrl-C stopped Compose itself: tidy after it
            if step.kind == "start":
                with contextlib.suppress(Exception, KeyboardInterrupt):
                    self.on_engine(target).put_right(target.app, target.id)

        self.timed(outcome, step, lambda: self._run(step, target), tidy)

    def timed(self, outcome: Outcome, step: Step, run: Callable[[], str],
              tidy: Callable[[], None] | None = None) -> None:
        """Run one step, reporting its start and its end: ok, skip (`"skip: why"` says why),
        failed on any exception, interrupted on Ctrl-C (then `tidy`)."""
        started = time.monotonic()
        self.on_step(step, "start", 0.0)
        try:
            state, _, why = run().partition(": ")
        except Exception:  # an unexpected error fails the step too
            self._report(outcome, step, "failed", time.monotonic() - started)
            raise
        except KeyboardInterrupt:  # shown and recorded as interrupted (lifecycle closes the rest)
            self._report(outcome, step, "interrupted", time.monotonic() - started)
            if tidy is not None:
                tidy()
            raise
        if why:
            step = replace(step, description=f"{step.description} — skipped: {why}", reason=why)
        self._report(outcome, step, state, time.monotonic() - started)

    def run_steps(self, plan: Plan, run: Callable[[Step], str]) -> Outcome:
        """Every step of the plan through `run`, each timed and reported: the loop of the
        runtimes that have no step of their own to restore (Kubernetes, Swarm)."""
        outcome = Outcome()
        for step in plan.steps:
            if step.kind == "lock":  # lifecycle.up holds the instance's lock around this
                self._report(outcome, step, "ok", 0.0)
            else:
                self.timed(outcome, step, partial(run, step))
        return outcome

    def _report(self, outcome: Outcome, step: Step, state: str, seconds: float) -> None:
        outcome.steps.append((step, state, seconds))
        self.on_step(step, state, seconds)

    def _run(self, step: Step, target: Target) -> str:
        if step.action == "noop":
            return "skip"
        file = compose_file(self.project.root, target)
        runtime = self.on_engine(target)
        match step.kind:
            case "isolation" | "record":
                return "ok"  # checked when the plan was made; recorded by the caller
            case "ports":
                self.check_ports(target)
            case "servers":
                check_servers(target, Servers.for_target(target, self.environ))
            case "user-secrets":
                check_user_secrets(target, self.project.root, self.environ)
            case "build":
                # Built here, where the build context is (Kamal does so too); the images
                # step then sends a remote host the layers it lacks.
                self._trial_data(target)
                (ComposeRuntime() if target.engine.remote else runtime).build(
                    target.project, trial_file(self.project.root, target))
            case "images":
                file, data = trial_file(self.project.root, target), self._trial_data(target)
                self.send_images(target, file)
                self._images[target.id] = self._preflight(target).images(target, file, data)
            case "trial":
                return self._trial(target)
            case "directory":
                if target.engine.remote:  # on the instance's host, not this machine
                    remote.make_dirs(target.engine, [step.resource])
                else:
                    make_dirs(Path(step.resource))
            case "secrets" | "database" | "sqlite" | "bucket" | "s3key" | "cache":
                self._provision(target, step.kind)
            case "envfile":
                for service, path in env_files(self.project.root, target).items():
                    write_env_file(Path(path), self._provisioner(target).variables(target.service(service)))
            case "render":
                self._remember(target, file)
                base = self.project.compose[0].file.parent
                rendered = render(target, base, env_files(self.project.root, target))
                write_atomic(file, to_yaml(rendered))
                self._rendered[target.id] = rendered
            case "start":
                why = self._changed(target, file)
                if why is None:
                    return f"skip: {deployed.SAME}"
                self._stamp_file(target).unlink(missing_ok=True)  # what runs now is Compose's to say
                self.send_images(target, file)
                runtime.put_right(target.app, target.id)  # an earlier `up` stopped half-way
                runtime.up(target.project, file)
                self._listed.pop(target.id, None)  # replaced, some of them
            case "restore":
                runtime.up(target.project, file)
            case kind if kind.startswith("hook:"):
                self._listed.pop(target.id, None)  # `compose run` may start what it depends on
                runtime.run_once(target.project, file, step.resource, step.command[-1])
            case "health":
                checks = [c for c in checks_for(target) if c.service == step.resource]
                with reached(target.engine, checks) as near:
                    wait_healthy(near, lambda: self._list(target),
                                 self.health_timeout, self.on_wait,
                                 tail=lambda fact: runtime.last_lines(fact.name),
                                 listens=proc_listening if target.engine.local else lambda fact: None)
            case "route":
                # Traefik routes by the rendered labels; the host's Caddy gets the routes
                # here, started first when none answers.
                self._proxy_listen = self.proxy_of(target).set_routes(target.app, target.id,
                                                                      routes_for(target)).listen
            case _:
                raise AssertionError(f"plan step {step.kind!r} has no executor")
        return "ok"

    def proxy_of(self, target: Target) -> HostProxy:
        """The proxy of the instance's host: this machine's Caddy, or the remote host's."""
        if target.engine.remote:
            from envplane.hosts.proxy import remote_proxy

            proxy: HostProxy = remote_proxy(target.engine)
            return proxy
        return self.proxy

    def send_images(self, target: Target, file: Path) -> None:
        """Images of the instance that its remote host lacks and this machine's engine has
        (built or loaded here) go there first: no registry needed, nothing rebuilt. An
        image to build that neither has is built here, where the build context is."""
        if target.engine.remote:
            from envplane.hosts.transfer import images_to_host, unbuilt

            if unbuilt(target):
                ComposeRuntime().build(target.project, file)
            images_to_host(self.project, target)

    def _list(self, target: Target) -> list[ContainerFact]:
        """The instance's containers, kept for the steps after this one (one listing, not one each)."""
        facts = self._listed[target.id] = self.on_engine(target).containers(target.app, target.id)
        return facts

    def _stamp_file(self, target: Target) -> Path:
        return instance_dir(self.project.root, target) / deployed.STAMP

    def _digest(self, target: Target, file: Path) -> str | None:
        """What `start` gives Compose (deployed.py); None without the images step's ids."""
        images, data = self._images.get(target.id), self._rendered.get(target.id)
        if images is None or data is None:
            return None
        read = deployed.read_files(deployed.files_read(data), file.parent)
        return deployed.digest(file.read_text(encoding="utf-8"), read, images)

    def _changed(self, target: Target, file: Path) -> str | None:
        """Why `start` must run Compose; None when the containers the last healthy `up` started
        run, all of them, from this very file, env files and images. Keeps the digest to stamp."""
        now = self._digest(target, file)
        if now is None:
            return "no image ids"
        self._digests[target.id] = now
        stamp = deployed.load(self._stamp_file(target))
        if stamp is None or stamp.digest != now:
            return deployed.changed(stamp, now, [], {})
        running = self._listed.get(target.id)
        if running is None:
            running = self._list(target)
        why = deployed.changed(stamp, now, running, self._images[target.id])
        if why is None:
            del self._digests[target.id]  # stamped already
        return why

    def _stamp(self, target: Target, now: str) -> None:
        """After a healthy `up`: the containers it left running, for the next `up` (deployed.py)."""
        running = self._listed.get(target.id)
        if running is None:  # no health step listed them
            running = self._list(target)
        stamp = deployed.stamp_of(now, running)
        if stamp is not None:
            write_atomic(self._stamp_file(target), deployed.dump(stamp))

    def _remember(self, target: Target, file: Path) -> None:
        """Keep the file the instance runs now, pinned to its images, before `start` replaces it."""
        if not file.exists():
            return
        running = [c for c in self._list(target) if c.state == "running" and c.image]
        if running:
            text, images = file.read_text(encoding="utf-8"), {c.service: c.image for c in running}
            self._previous[target.id] = (text, images, frozenset(c.id for c in running))

    def _restore(self, outcome: Outcome, target: Target, failure: BackendError) -> None:
        """The new containers did not start or become healthy: start the previous ones again,
        so a failed `up` leaves the instance serving as before; raise what failed, saying so.
        When `start` replaced nothing (a no-op `up` of an instance that is unhealthy anyway),
        the containers that ran before run still: nothing to restore, nothing to recreate."""
        remembered = self._previous.pop(target.id, None)
        if remembered is None:
            return
        text, images, ran = remembered
        now = {c.id for c in self.on_engine(target).containers(target.app, target.id) if c.state == "running"}
        if ran <= now:
            return
        previous = previous_file(text, images)
        if previous is None:
            return
        file = compose_file(self.project.root, target)
        step = Step("restore", "run", "start the previous containers again (the new ones did not "
                    "become healthy)", target.project)
        try:
            write_atomic(file, previous)
            self._timed(outcome, step, target)
        except BackendError as exc:
            raise BackendError(failure.message, f"starting the previous containers again failed too: "
                               f"{exc.message[-300:]}") from failure
        raise BackendError(failure.message, "the previous containers run again, as before this `up`; "
                           + (failure.hint or "see `envplane logs`")) from failure

    def _preflight(self, target: Target) -> Preflight:
        return Preflight(self.on_engine(target))

    def _trial_data(self, target: Target) -> dict[str, Any]:
        """The new Compose file as the pre-flight's trial (written once per run)."""
        if target.id not in self._trials:
            base = self.project.compose[0].file.parent
            rendered = render(target, base, env_files(self.project.root, target), env_files_exist=False)
            data = trial_model(rendered, target.project)
            write_atomic(trial_file(self.project.root, target), to_yaml(data))
            self._trials[target.id] = data
        return self._trials[target.id]

    def _trial(self, target: Target) -> str:
        """The trial, unless this very file with these very images passed one before, or
        nothing of the instance runs: the trial exists so `up` never stops a healthy service
        before it knows the new one can start (#10.2); a new instance, or one whose containers
        all stopped, has none to stop, and `start` itself says what cannot start (#11).
        `release` tries anyway: it proves a version can run before it takes its number."""
        file = trial_file(self.project.root, target)
        data = self._trial_data(target)
        images = self._images.get(target.id)
        if images is None:
            images = self._preflight(target).images(target, file, data)
        passed = file.with_name("passed")
        done = proof(file.read_text(encoding="utf-8"), images)
        if passed.exists() and passed.read_text(encoding="utf-8") == done:
            return "skip: this file with these images passed a trial before"
        if not self._prove_always and not any(
                c.state == "running" for c in self.on_engine(target).containers(target.app, target.id)):
            self._started_proves[target.id] = (passed, done)  # a healthy start proves it as well
            return f"skip: {NOTHING_TO_PROTECT}"
        self._preflight(target).trial(target, file, data)
        write_atomic(passed, done)
        return "ok"

    def run_step(self, step: Step, target: Target) -> str:
        """Run one step of a plan on its own (blue-green runs the resource steps so)."""
        return self._run(step, target).partition(": ")[0]

    def preflight(self, plan: Plan, kinds: tuple[str, ...] | None = None) -> None:
        """Run the plan's pre-flight checks (or those of `kinds`) on their own, reporting each:
        `release` proves a version can run before it takes its number. Needs no lock: the
        deploy that follows checks again under it."""
        self._check_engine(plan.target)
        outcome = Outcome()
        self._prove_always = True
        for step in plan.steps:
            if step.phase == "preflight" and step.kind != "lock" and (kinds is None or step.kind in kinds):
                self._timed(outcome, step, plan.target)

    def provision_only(self, plan: Plan) -> list[Change]:
        """Run just the resource steps of a plan (`envplane provision`)."""
        kinds = {"secrets", "database", "sqlite", "bucket", "s3key", "cache", "envfile"}
        for step in plan.steps:
            if step.kind in kinds:
                self._run(step, plan.target)
        provisioner = self._provisioners.get(plan.target.id)
        return provisioner.changes if provisioner else []

    def _provisioner(self, target: Target) -> Provisioner:
        if self._provisioners.get(target.id) is None:
            self._provisioners[target.id] = Provisioner(
                target, Servers.for_target(target, self.environ),
                open_secret_store(store_kind(target, self.environ), self.project.root, self.environ,
                                  target.app),
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
        elif kind == "s3key":
            p.s3_key()
        else:
            p.cache()

    def check_ports(self, target: Target) -> None:
        """The pre-flight's port check on its own (`platform up` runs it too)."""
        self._preflight(target).ports(target)

    def traces(self, target: Target, purge: bool) -> list[str]:
        """What of the instance `down` (with `purge`) would remove here, in words; empty when
        there is nothing: never deployed, or down (purged) already. Reads only."""
        if target.env.runtime == "kubernetes":
            from envplane.kubernetes.apply import runtime_for
            from envplane.kubernetes.convert import identity

            namespace, _ = identity(target)
            exists = runtime_for(self, target).namespace_labels(namespace) is not None
            return [f"namespace {namespace}"] if exists else []
        found: list[str] = []
        if target.env.runtime == "swarm":
            from envplane.backends.runtime.swarm import SwarmRuntime

            swarm = SwarmRuntime(target.engine)
            swarm.check()
            services = [s.name for s in swarm.services(target.app, target.id)]
            secrets = swarm.secrets_of(target.app, target.id) + swarm.configs_of(target.app, target.id)
            found += [f"{kind} {', '.join(names)}" for kind, names in
                      (("services", services), ("secrets and configs", secrets)) if names]
            if purge:
                found.append("its volumes on the swarm's nodes")  # not listed here: purge looks
        else:
            runtime = self.on_engine(target)
            runtime.check()
            left = runtime.leftovers(target.app, target.id)
            found += [f"{kind} {', '.join(names)}" for kind, names in (
                ("containers", left.containers), ("networks", left.networks),
                ("volumes", left.volumes if purge else ())) if names]
        if self.proxy_of(target).routes_instance(target.app, target.id):
            found.append("its proxy route")
        if instance_dir(self.project.root, target).exists():
            found.append("its rendered files")
        if purge and (remote.exists(target.engine, target.data_path) if target.engine.remote
                      else Path(target.data_path).exists()):
            found.append(f"its data path {target.data_path}")
        if purge and (target.database or target.bucket or target.redis_prefix) and \
                self._provisioner(target).secrets.list(target.secrets_prefix):
            # made by a `provision` or an `up` that failed before anything ran: its
            # resources may exist too, and the purge drops them with the secrets
            found.append(f"its secrets under {target.secrets_prefix}/")
        return found

    def down(self, target: Target, purge: bool) -> Removal:
        """Remove the instance (lifecycle.down holds its lock around this)."""
        if target.env.runtime == "kubernetes":
            from envplane.kubernetes import apply as kubernetes

            return kubernetes.down(self, target, purge)
        if target.env.runtime == "swarm":
            from envplane.swarm import apply as swarm

            return swarm.down(self, target, purge)
        runtime = self.on_engine(target)
        runtime.check()
        self.proxy_of(target).remove(target.app, target.id)
        left = runtime.down(target.app, target.id, purge)
        folder = instance_dir(self.project.root, target)
        if folder.exists():
            shutil.rmtree(folder)  # its rendered file and env files go with it
        kept: list[str] = []
        if purge:
            if target.database or target.bucket or target.redis_prefix:
                # resources, then the instance's secrets (an app without resources has none)
                kept = self._provisioner(target).purge()
            remove_data_path(target, self.project.root)
        return Removal(left, tuple(kept))


def write_atomic(path: Path, text: str) -> None:
    """Write via a temporary file (0600) and rename, so a killed run never leaves half a file."""
    make_dirs(path.parent)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def remove_data_path(target: Target, project_dir: Path) -> None:
    """Delete the instance's data path, only if it passes the ownership rule (datapath.py).

    The path was checked when it was resolved and recorded; this is the last look before
    an `rm -r`, so a path that slipped past them deletes nothing.
    """
    why = not_owned(target.data_path, target.app, target.id, PurePosixPath(project_dir.as_posix()))
    if why is not None:
        raise BackendError(f"refusing to delete the data path: {why}", RULE_HINT)
    path = Path(target.data_path)
    if target.engine.remote:  # the folder is on the instance's host
        remote.remove_dir(target.engine, target.data_path)
    elif path.exists():
        shutil.rmtree(path)


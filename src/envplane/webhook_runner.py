"""What the webhook does for one PR action: deploy the PR's head, or record that it closed.

A deploy checks the head sha out in the PR's worktree (`checkouts`), loads the app from
there, checks its preview against the server's spec as well as the PR's own, builds the
images from the worktree under names of the preview's own, and brings the preview up
like `preview up --build`. Every action is audited under `github:{sender}`; a failure
before the deploy starts is audited too.
"""

from __future__ import annotations

import copy
import os
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace

from envplane import actions, checkouts, lifecycle, preview
from envplane.compose.merge import ComposeModel
from envplane.errors import EnvplaneError
from envplane.events import Event, LogLine, Report, StepStarted, Waiting, line
from envplane.release.images import repository
from envplane.service.instances import up_target
from envplane.spec.load import Project
from envplane.state import audit, instances
from envplane.state.db import Store
from envplane.target import Target
from envplane.webhook import Action


def instance_images(target: Target) -> Target:
    """Images a preview builds are tagged with its instance id (`web:dev` -> `web:pr-7`).

    A Compose file that names the image of a built service gives every instance one tag:
    two PRs building at once would run each other's code, or staging's.
    """
    data = copy.deepcopy(target.compose.data)
    for service in data.get("services", {}).values():
        if "build" in service and service.get("image"):
            service["image"] = f"{repository(str(service['image']))}:{target.id}"
    return replace(target, compose=ComposeModel(data, target.compose.origin, target.compose.files))


def checked_head(project: Project, trees: checkouts.Checkouts, env: str, pr: int, sha: str,
                 evictable: Callable[[], Iterable[int]] = tuple) -> tuple[Project, Target]:
    """PR `pr`'s commit `sha` checked out in its own worktree, loaded, and its preview
    checked against the server's spec as well as its own, planned with its own images."""
    spec = trees.prepare(pr, sha, evictable)
    head = checkouts.head_project(project, spec)
    known = lifecycle.known_instances(head, os.environ)
    target = instance_images(actions.resolve_checked(head, env, pr, None, known, reference=project))
    actions.plan(head, target, build=True)  # a PR whose plan fails is refused before anything runs
    return head, target


@dataclass
class PreviewRunner:
    """Runs the actions of the server's app `project`; `say` prints one line for people."""

    project: Project
    env: str
    store: Store
    trees: checkouts.Checkouts
    say: Callable[[str], None]
    health_timeout: float = 300.0
    busy: set[int] = field(default_factory=set)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def __call__(self, action: Action) -> None:
        assert action.ref is not None
        if action.kind == "release":
            self.release(action)
            return
        assert action.pr is not None
        with self.lock:
            self.busy.add(action.pr)
        try:
            if action.kind == "up":
                self.up(action)
            elif action.kind == "close":
                self.close(action)
        finally:
            with self.lock:
                self.busy.discard(action.pr)

    def up(self, action: Action) -> None:
        pr, sha = int(action.pr or 0), str(action.ref)
        session = lifecycle.Session(self.project, self.store, f"github:{action.sender or 'unknown'}")
        self.say(f"PR {pr} {sha[:12]}: deploying")
        with session.holding(self.project.app, self.env, f"pr-{pr}"):  # lock, check out, deploy (#9)
            try:
                head, target = checked_head(session.project, self.trees, self.env, pr, sha, self.evictable)
            except EnvplaneError as exc:
                audit.record(self.store, session.actor, "up", self.project.app, self.env, f"pr-{pr}",
                             "failed", {"ref": sha, "delivery": action.delivery, "error": exc.message})
                raise
            done = up_target(replace(session, project=head), target, ref=sha, build=True,
                             timeout=self.health_timeout, report=self._report(f"PR {pr}"))
        urls = " ".join(done.urls.values()) if done.urls else ""
        self.say(f"PR {pr} {sha[:12]}: up {urls}".rstrip())

    def release(self, action: Action) -> None:
        """A push to `webhook.release_on_push`'s branch: the next version of that very commit,
        released to the setting's env as `envplane release ENV --ref SHA` does (the commit
        fetched into the env's own worktree under its lock when the server's checkout is not
        at it); audited as `push` under github:{sender}, whatever the outcome."""
        from envplane.service import releases

        rule = self.project.spec.webhook.release_on_push
        assert rule is not None  # the receiver makes release actions only when it is set
        sha, actor = str(action.ref), f"github:{action.sender or 'unknown'}"
        detail = {"ref": sha, "branch": rule.branch, "delivery": action.delivery}
        self.say(f"{action.label} {sha[:12]}: releasing to {rule.env}")
        try:
            made = releases.create(self.project, rule.env, None, sha, timeout=self.health_timeout,
                                   actor=actor, report=self._report(action.label))
        except Exception as exc:
            error = exc.message if isinstance(exc, EnvplaneError) else f"{type(exc).__name__}: {exc}"[:500]
            audit.record(self.store, actor, "push", self.project.app, rule.env, rule.env, "failed",
                         {**detail, "error": error})
            raise
        audit.record(self.store, actor, "push", self.project.app, rule.env, rule.env, "ok",
                     {**detail, "version": made.version})
        urls = " ".join(made.deployed.urls.values()) if made.deployed.urls else ""
        self.say(f"{action.label} {sha[:12]}: {made.version} released to {rule.env} {urls}".rstrip())

    def close(self, action: Action) -> None:
        pr = int(action.pr or 0)
        instance = f"pr-{pr}"
        if instances.get_instance(self.store, self.project.app, self.env, instance) is not None:
            instances.mark_closed(self.store, self.project.app, self.env, instance)
        audit.record(self.store, f"github:{action.sender or 'unknown'}", "pr-closed", self.project.app,
                     self.env, instance, "ok", {"ref": action.ref, "delivery": action.delivery})
        self.say(f"PR {pr}: closed; `envplane preview gc` removes its preview after the TTL")

    def evictable(self) -> Iterable[int]:
        """PR worktrees that may go to make room (none that an action is working in)."""
        with self.lock:
            busy = set(self.busy)
        records = instances.list_instances(self.store, self.project.app, self.env)
        return [pr for pr in preview.evictable(self.trees.present(), records) if pr not in busy]

    def _report(self, label: str, every: float = 10.0) -> Report:
        """Finished steps and notes as log lines; what a step waits on, every `every` s."""
        shown = [0.0]

        def report(event: Event) -> None:
            if isinstance(event, StepStarted | LogLine):
                return
            if isinstance(event, Waiting):
                if event.seconds - shown[0] < every:
                    return
                shown[0] = event.seconds
            else:
                shown[0] = 0.0
            self.say(f"{label}: {line(event)}")

        return report

"""GitHub's webhooks in `envplane serve`: POST /hooks/github/{app}.

The requests go to the same `webhook.Receiver` as `envplane webhook`'s, with every check it
makes (size before reading, HMAC before parsing, repeated deliveries, the spec's fork and
author policy, refusals throttled in the log and never audited unless GitHub signed them),
and the actions to the same queue and runner (one action at a time per PR, a newer push
replacing a waiting one). Here each action also runs as a job of the server, listed with
its outcome in /api/v1/jobs under `github:{sender}`.

An app's receiver is made at its first delivery: its checkout must be a git clone with the
remote the spec names. The secret is the server's GITHUB_WEBHOOK_SECRET.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING

from envplane.errors import NotFound
from envplane.events import Note
from envplane.secret import Secret
from envplane.server.jobs import Job, Jobs

if TYPE_CHECKING:
    from envplane.spec.load import Project
    from envplane.webhook import Action, Receiver
    from envplane.webhook_queue import PreviewQueue

log = logging.getLogger("envplane.webhook")
SECRET_ENV = "GITHUB_WEBHOOK_SECRET"
WORKERS = 2  # PRs deployed at once per app
HEALTH_TIMEOUT = 300.0


@dataclass
class Hooks:
    """The server's webhook receivers, one per app, made on first use."""

    environ: Mapping[str, str]
    load_app: Callable[[str], Project]
    jobs: Jobs
    _receivers: dict[str, Receiver] = field(default_factory=dict)
    _queues: list[PreviewQueue] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def receiver(self, app: str) -> Receiver:
        """The app's receiver; NotFound when the app is not registered or the server has no
        webhook secret (GitHub shows the delivery failed, with the reason)."""
        with self._lock:
            found = self._receivers.get(app)
            if found is None:
                found = self._receivers[app] = self._make(app)
            return found

    def stop(self, timeout: float) -> None:
        """Finish the running actions; drop the waiting ones."""
        with self._lock:
            queues = list(self._queues)
        for queue in queues:
            queue.stop(timeout)

    def _make(self, app: str) -> Receiver:
        from envplane import checkouts, lifecycle, preview, webhook
        from envplane.state import audit, deliveries
        from envplane.webhook_queue import PreviewQueue
        from envplane.webhook_runner import PreviewRunner

        value = self.environ.get(SECRET_ENV)
        if not value:
            raise NotFound(f"no webhook here: {SECRET_ENV} is not set on the server",
                           "set it to the secret of the GitHub hook and restart `envplane serve`")
        project = self.load_app(app)
        env = preview.preview_env(project.envs)
        policy = project.spec.webhook
        trees = checkouts.Checkouts.of(project, policy.remote, policy.max_worktrees)
        trees.check_remote()
        session = lifecycle.open_session(project, self.environ)

        def say(line: str) -> None:
            log.info("%s: %s", project.app, line)

        def audit_refusal(refusal: webhook.Refusal) -> None:
            audit.record(session.store, f"github:{refusal.sender or 'unknown'}", "webhook", project.app, env,
                         f"pr-{refusal.pr}" if refusal.pr else None, "refused",
                         {"reason": refusal.reason, "status": refusal.status, "ref": refusal.ref})

        runner = PreviewRunner(project, env, session.store, trees, say, HEALTH_TIMEOUT)

        def run(action: Action) -> None:
            """The action as a job of the server, in the queue's worker (one per PR at a time)."""
            kind = {"up": "preview-up", "close": "preview-closed"}.get(action.kind, action.kind)
            released = policy.release_on_push.env if policy.release_on_push else env
            where = (env, f"pr-{action.pr}") if action.pr is not None else (released, released)

            def work(report: Callable[[Note], None]) -> dict[str, object]:
                def said(line: str) -> None:
                    say(line)
                    report(Note(line))

                replace(runner, say=said)(action)  # same worktrees, same busy set and lock
                return {"pr": action.pr, "sha": action.ref, "delivery": action.delivery}

            self.jobs.run(kind, project.app, *where, f"github:{action.sender or 'unknown'}",
                          work, on_end=lambda job: _ended(job, say))

        def superseded(old: Action, new: Action) -> None:
            say(f"{old.label} {(old.ref or '')[:12]}: superseded by {(new.ref or '')[:12]} before it started")

        queue = PreviewQueue(run, WORKERS, superseded).start()
        self._queues.append(queue)
        say(f"webhook: taking deliveries for previews (env {env}), PR heads from {trees.remote}")
        return webhook.Receiver(Secret(value), policy,
                                lambda delivery: deliveries.first_time(session.store, project.app, delivery),
                                queue.submit, audit_refusal, say)


def _ended(job: Job, say: Callable[[str], None]) -> None:
    if job.state == "failed" and job.problem is not None:
        say(f"{job.instance}: failed: {job.problem['detail']}")

"""The webhook's work queue: one action at a time per PR, a few PRs at once.

An action waits while its PR has one running. A newer action for a PR replaces the one
still waiting (two pushes during a build deploy the last only); the running one finishes.
PRs are served in the order their waiting action first arrived. Releases of pushed commits
(no PR) queue the same way as one more "PR", numbered 0: one at a time, the newest push
waiting replacing an older one.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from envplane.webhook import Action

log = logging.getLogger("envplane.webhook")


class PreviewQueue:
    def __init__(self, run: Callable[[Action], None], workers: int = 2,
                 superseded: Callable[[Action, Action], None] = lambda old, new: None,
                 failed: Callable[[Action, BaseException], None] = lambda action, error: None) -> None:
        self.run, self.superseded, self.failed = run, superseded, failed
        self.waiting: dict[int, Action] = {}  # PR -> its next action, in arrival order
        self.running: set[int] = set()
        self.stopping = False
        self.changed = threading.Condition()
        self.threads = [threading.Thread(target=self._work, name=f"preview-worker-{n}", daemon=True)
                        for n in range(workers)]

    def start(self) -> PreviewQueue:
        for thread in self.threads:
            thread.start()
        return self

    def submit(self, action: Action) -> None:
        key = action.pr or 0
        with self.changed:
            old = self.waiting.pop(key, None)
            self.waiting[key] = action  # at the back: a PR pushed to again waits its turn
            self.changed.notify_all()
        if old is not None:
            self.superseded(old, action)

    def idle(self) -> bool:
        with self.changed:
            return not self.waiting and not self.running

    def wait_idle(self, timeout: float) -> bool:
        with self.changed:
            return self.changed.wait_for(lambda: not self.waiting and not self.running, timeout)

    def stop(self, timeout: float = 600.0) -> None:
        """Finish the running actions; drop the waiting ones."""
        with self.changed:
            self.stopping = True
            self.waiting.clear()
            self.changed.notify_all()
        for thread in self.threads:
            if thread.is_alive():
                thread.join(timeout)

    def _next(self) -> Action | None:
        with self.changed:
            while True:
                if self.stopping:
                    return None
                ready = next((pr for pr in self.waiting if pr not in self.running), None)
                if ready is not None:
                    self.running.add(ready)
                    return self.waiting.pop(ready)
                self.changed.wait()

    def _work(self) -> None:
        while (action := self._next()) is not None:
            try:
                self.run(action)
            except Exception as error:  # one bad PR must not stop the others
                log.debug("preview action for PR %s failed", action.pr, exc_info=True)
                self.failed(action, error)
            finally:
                with self.changed:
                    self.running.discard(action.pr or 0)
                    self.changed.notify_all()

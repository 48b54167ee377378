"""Deploy a branch to staging (seed 003's `deploy_branch`): try a feature branch on the env
that mirrors production before it is merged, without touching the server's own checkout.

The branch's head is fetched from the app's git remote into a worktree of the env's own
(`.envplane/webhook/worktrees/env-staging`) and brought up from there, as the webhook does
for a pull request: the branch's spec and Compose files, the server's state and secrets.
Only an env with one instance that takes direct deploys qualifies; one behind an approval
gate takes a version only through `promote`.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, replace
from typing import Any

from envplane import actions, lifecycle
from envplane.errors import UsageError
from envplane.events import Report, ignore
from envplane.service import instances
from envplane.service.session import open_session
from envplane.spec.load import Project
from envplane.spec.models import GIT_BRANCH


@dataclass(frozen=True)
class BranchDeploy:
    branch: str
    commit: str
    up: instances.Up

    def as_dict(self) -> dict[str, Any]:
        return {"branch": self.branch, "commit": self.commit, **self.up.as_dict()}


def check_branch(branch: str) -> str:
    if not GIT_BRANCH.match(branch) or any(part.startswith(".") for part in branch.split("/")):
        raise UsageError(f"{branch!r} is not a branch name",
                         "letters, digits and . _ / @ + -, e.g. feature/login; no leading '-', no '..'")
    return branch


def deploy(project: Project, branch: str, env: str = "staging", *, timeout: float = 120.0,
           wait: bool = True, report: Report = ignore) -> BranchDeploy:
    """Bring `env` up from the head of `branch` (rebuilding its images), recorded with the
    branch and commit as its ref."""
    from envplane import checkouts
    from envplane.release.flow import only_through_gates

    check_branch(branch)
    config = project.env(env)
    if config.instances != "one" or config.runtime == "process":
        raise UsageError(f"env {env} has no single instance a branch could be deployed to",
                         "deploy a branch to staging; a pull request gets its preview with preview up")
    if only_through_gates(config):
        raise UsageError(f"env {env} takes a version only through its gates (approval among them)",
                         "deploy the branch to staging, then release it and "
                         f"`envplane promote VERSION --to {env}`")
    trees = checkouts.Checkouts.of(project, project.spec.webhook.remote)
    trees.check_remote()
    session = open_session(project, report, wait)
    with session.holding(project.app, env, env):  # lock, check out, deploy (#9)
        sha, spec = trees.prepare_branch(env, branch)
        head = checkouts.head_project(project, spec)
        # The branch's spec cannot move the env onto other servers, hosts or secret stores.
        target = actions.resolve_checked(head, env, None, None, lifecycle.known_instances(head, os.environ),
                                         reference=project)
        done = instances.up_target(replace(session, project=head), target, ref=f"{branch}@{sha[:12]}",
                                   build=True, timeout=timeout, report=report)
    return BranchDeploy(branch, sha, done)

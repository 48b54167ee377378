"""The steps of `up` on the swarm runtime. Pure: a Target in, Steps out.

Resources are provisioned as for compose (the tasks reach the same servers); what differs
is how the instance reaches the engine: a stack file instead of a Compose file, the
credentials as Docker secrets made on the CLI's stdin instead of env files, images sent to
every node (or pushed to the registry), `docker stack deploy`, and a wait until every
service runs its replicas, healthy, with its rolling update finished.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from envplane.errors import SpecError
from envplane.plan import Step, instance_dir
from envplane.spec.load import Project
from envplane.swarm import matrix
from envplane.swarm.render import stack_name
from envplane.target import Target


def stack_file(root: Path, target: Target) -> Path:
    return instance_dir(root, target) / "stack.yaml"


def check(project: Project, target: Target) -> None:
    """Refuse what a stack cannot run, every field at once with its file and line."""
    found = matrix.problems(project, target)
    if found:
        raise SpecError(found)


def steps(target: Target, root: Path, directories: Sequence[Step], resources: Sequence[Step],
          registry: str | None) -> list[Step]:
    stack = stack_name(target)
    file = stack_file(root, target)
    manager = target.engine
    out = [Step("swarm", "check", f"check that {manager.describe()} manages a swarm", manager.key)]
    out += directories  # on the manager: where a stateful service runs (README: Swarm)
    out += [s for s in resources if s.kind != "envfile"]  # credentials go to Docker secrets
    users = [s.name for s in target.services if s.uses or s.secrets]
    if users:
        out.append(Step("docker-secrets", "create", "make the Docker secrets of " + ", ".join(users)
                        + "'s credentials (on the CLI's stdin, never on disk)", stack))
    how = f"push them to {registry} (nodes pull by digest)" if registry else \
        "send them to every node that lacks them (missing layers only)"
    out += [
        Step("images", "run", f"build what is missing here, then {how}", stack),
        Step("render", "create", f"write the stack file {file} (no secret values)", str(file)),
        Step("deploy", "run", f"deploy stack {stack} (rolling update, start-first)", stack),
        Step("converge", "check", f"wait until every service of {stack} runs its replicas, healthy", stack),
        Step("prune", "run", f"remove the Docker secrets and configs of {stack} no service uses any more",
             stack),
    ]
    if target.domain and target.public_urls():
        out.append(Step("route", "create", f"route {target.domain} to the public services' tasks on "
                        "every node", target.domain))
    return out

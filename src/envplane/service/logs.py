"""A service's log lines, every secret value of the app masked: `envplane logs`, and the
API's, dashboard's and MCP's log streams.

`lines` checks its arguments and finds the service at once (bad input and a service that is
not up fail before anything is read) and returns an iterator: the last `tail` lines, then
with `follow=True` every new one as it comes, until the caller stops iterating (closing the
iterator stops the engine's log reader). `reader` is the command behind it, for a caller
that runs it in a thread of its own (the dashboard's stream); it masks with `secrets`.
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

from envplane.errors import BackendError, NotFound, UsageError
from envplane.secret import Secret, mask_known
from envplane.spec.load import Project

if TYPE_CHECKING:
    from envplane.target import Target


@dataclass(frozen=True)
class Reader:
    """The command that prints a service's logs, where it runs, and what to mask in them."""

    args: tuple[str, ...]
    environ: Mapping[str, str] | None  # the engine's (DOCKER_HOST of a remote host); None: envplane's
    what: str  # "docker logs", for messages
    secrets: tuple[Secret, ...]


def reader(project: Project, env: str, service: str, pr: int | None = None, run: str | None = None, *,
           follow: bool = False, tail: int = 200) -> Reader:
    """How to read the service's logs on its runtime: a container's on Compose, every
    replica's on Swarm and Kubernetes. NotFound when it has no container."""
    from envplane import actions
    from envplane.service.secrets import app_secrets
    from envplane.target import resolve

    target = resolve(project, env, pr, run)
    actions.named_service(target, service)
    if target.env.runtime == "kubernetes":
        from envplane.commands import kubectl
        from envplane.kubernetes.convert import identity
        from envplane.kubernetes.plan import cluster

        namespace, _ = identity(target)
        args, environ, what = kubectl.logs(cluster(project.root, target.env), namespace, service, follow,
                                           tail), None, "kubectl logs"
    elif target.env.runtime == "swarm":
        args, environ, what = _swarm_reader(target, service, follow, tail)
    else:
        args, environ, what = _container_reader(target, service, follow, tail)
    return Reader(tuple(args), environ, what, tuple(app_secrets(project)))


def lines(project: Project, env: str, service: str, pr: int | None = None, run: str | None = None, *,
          follow: bool = False, tail: int = 200) -> Iterator[str]:
    """The service's last `tail` log lines (both streams, and on Kubernetes and Swarm every
    replica's), then with `follow` each new one; each line masked, without its newline."""
    return _read(reader(project, env, service, pr, run, follow=follow, tail=tail))


def _container_reader(target: Target, service: str, follow: bool,
                      tail: int) -> tuple[list[str], Mapping[str, str] | None, str]:
    """The service's container on the instance's engine (`docker logs`)."""
    from envplane.backends.runtime.compose import ComposeRuntime
    from envplane.commands import docker as docker_cmd
    from envplane.target import LABEL_SERVICE

    runtime = ComposeRuntime(target.engine)
    runtime.check()
    matches = [c for c in runtime.containers(target.app, target.id) if c.labels.get(LABEL_SERVICE) == service]
    if not matches:
        raise NotFound(f"{service} of {target.app} {target.id} has no container: the instance is not up",
                       f"start it with `envplane up {target.env.name}{target.instance.flags}`; "
                       "`envplane status` shows what runs")
    return docker_cmd.logs(matches[0].name, follow, tail), runtime.env, "docker logs"


def _swarm_reader(target: Target, service: str, follow: bool,
                  tail: int) -> tuple[list[str], Mapping[str, str] | None, str]:
    """Every task of the service, on whichever node it runs (`docker service logs`)."""
    from envplane.backends.runtime.swarm import SwarmRuntime
    from envplane.commands import swarm as swarm_cmd

    runtime = SwarmRuntime(target.engine)
    runtime.check()
    matches = [s for s in runtime.services(target.app, target.id) if s.service == service]
    if not matches:
        raise UsageError(f"no Swarm service {service!r} in {target.app} {target.id}",
                         "is it up? see `envplane status`")
    return swarm_cmd.service_logs(matches[0].id, follow, tail), runtime.env, "docker service logs"


def _read(source: Reader) -> Iterator[str]:
    """The command's output line by line, masked; a reader that fails ends in a BackendError.
    Leaving the loop early stops the command."""
    args, environ, what, secrets = source.args, source.environ, source.what, source.secrets
    try:
        process = subprocess.Popen(list(args), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                   stdin=subprocess.DEVNULL, text=True, errors="replace", bufsize=1,
                                   env=dict(environ) if environ is not None else None)
    except FileNotFoundError:
        raise BackendError(f"{what} failed: {args[0]} is not installed") from None
    last = ""
    try:
        assert process.stdout is not None
        for raw in process.stdout:
            last = mask_known(raw.rstrip("\n"), secrets)
            yield last
    finally:
        if process.poll() is None:
            process.terminate()  # the caller stopped reading (a closed stream, Ctrl-C)
        code = process.wait()
    if code != 0:
        raise BackendError(f"{what} failed (exit code {code})" + (f": {last}" if last else ""),
                           "`envplane status` shows what runs")

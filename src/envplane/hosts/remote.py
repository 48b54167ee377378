"""Facts and folders on an engine's host, through short-lived helper containers.

A remote host's ports and folders are not this machine's: a local socket bind or
Path.mkdir would check and change the wrong machine. So envplane asks the host's engine,
in a helper container (`--rm`, labelled `envplane.helper`): with the host's network to
read which ports listen (/proc/net/tcp, parsed here, purely), and with the folder
bind-mounted to create, measure or delete it. This works the same for ssh:// and tcp://
engines, needs nothing on the server but Docker, and the helper image (busybox, 2 MB) is
sent from this machine's engine when the host lacks it (no registry needed).
"""

from __future__ import annotations

import os
import posixpath
from collections.abc import Iterable
from dataclasses import dataclass

from envplane.errors import BackendError
from envplane.hosts.connect import docker_env
from envplane.hosts.engine import Engine
from envplane.run import run

HELPER_IMAGE = "busybox:stable"
LABEL_HELPER = "envplane.helper"
MOUNT = "/envplane-host"


def helper_image() -> str:
    return os.environ.get("ENVPLANE_HELPER_IMAGE") or HELPER_IMAGE


def helper(engine: Engine, *args: str, network_host: bool = False, folder: str | None = None,
           create: bool = False, what: str = "") -> str:
    """Run one helper container on the engine; its stdout. `folder` is bind-mounted at
    MOUNT; `create`: the engine makes it when missing (`-v`), else a missing one is
    NotThere (`--mount` refuses a missing source)."""
    from envplane.hosts.images import ensure_image

    image = helper_image()
    ensure_image(engine, image)
    cmd = ["docker", "run", "--rm", "--pull", "never", "--label", f"{LABEL_HELPER}=1",
           "--network", "host" if network_host else "none", "--log-driver", "none"]
    if folder is not None:
        if "," in folder or ":" in folder:  # the separators of --mount and -v
            raise BackendError(f"refusing the folder {folder!r} on a remote host: ',' or ':' in its name")
        cmd += (["-v", f"{folder}:{MOUNT}"] if create
                else ["--mount", f"type=bind,source={folder},target={MOUNT}"])
    cmd += ["--entrypoint", "", image, *args]
    done = run(cmd, env=docker_env(engine), timeout=120, check=False,
               what=what or f"helper on {engine.describe()}")
    if done.returncode != 0 and "bind source path does not exist" in done.stderr:
        raise NotThere(folder or "")
    if done.returncode != 0:
        run(cmd, env=docker_env(engine), timeout=120, what=what or f"helper on {engine.describe()}")
    return done.stdout


class NotThere(BackendError):
    """The folder a helper was to mount does not exist on the host."""


# Ports -------------------------------------------------------------------------------

EPHEMERAL_RANGE = "/proc/sys/net/ipv4/ip_local_port_range"  # per network namespace


def listening_command() -> list[str]:
    return ["cat", EPHEMERAL_RANGE, "/proc/net/tcp", "/proc/net/tcp6", "/proc/net/udp", "/proc/net/udp6"]


@dataclass(frozen=True)
class Listening:
    tcp: frozenset[int]
    udp: frozenset[int]
    ephemeral: tuple[int, int] | None = None  # the host's ip_local_port_range, when read

    def taken(self, port: int, protocol: str) -> bool:
        return port in (self.udp if protocol == "udp" else self.tcp)


def parse_listening(text: str) -> Listening:
    """The output of listening_command: the ephemeral range (a line of two numbers), then
    ports in /proc/net/{tcp,tcp6,udp,udp6}: TCP sockets that LISTEN (state 0A), UDP
    sockets bound (state 07). The files follow each other; each starts with a header."""
    tcp: set[int] = set()
    udp: set[int] = set()
    ephemeral: tuple[int, int] | None = None
    kind = "tcp"
    for line in text.splitlines():
        fields = line.split()
        if not fields:
            continue
        if len(fields) == 2 and all(f.isdigit() for f in fields):
            ephemeral = (int(fields[0]), int(fields[1]))
            continue
        if fields[0] == "sl":  # a header; the local_address column tells nothing about kind,
            kind = "udp" if "drops" in fields else "tcp"  # but only udp files count drops
            continue
        if len(fields) < 4 or ":" not in fields[1]:
            continue
        port = int(fields[1].rsplit(":", 1)[1], 16)
        state = fields[3]
        if kind == "tcp" and state == "0A":
            tcp.add(port)
        elif kind == "udp" and state == "07":
            udp.add(port)
    return Listening(frozenset(tcp), frozenset(udp), ephemeral)


def listening(engine: Engine) -> Listening:
    """What listens on the engine's host now, and its ephemeral port range (both read in
    the host's network namespace: a container with the host's network sees them)."""
    text = helper(engine, *listening_command(), network_host=True,
                  what=f"read the listening ports of {engine.describe()}")
    return parse_listening(text)


# Folders -----------------------------------------------------------------------------

def _checked(path: str) -> str:
    norm = posixpath.normpath(path)
    if not norm.startswith("/") or norm != path.rstrip("/") or ".." in norm.split("/"):
        raise BackendError(f"refusing the folder {path!r} on a remote host: not a plain absolute path")
    return norm


def make_dirs(engine: Engine, paths: Iterable[str]) -> None:
    """`mkdir -p` each folder on the engine's host, as Path.mkdir does here (the engine
    creates a missing bind source and its parents itself)."""
    for path in paths:
        folder = _checked(path)
        helper(engine, "true", folder=folder, create=True, what=f"create {folder} on {engine.describe()}")


def remove_dir(engine: Engine, path: str) -> bool:
    """Delete the folder on the engine's host; False when it was not there. Callers decide
    whether it is the instance's to delete (apply.remove_data_path's rule)."""
    folder = _checked(path)
    parent, name = posixpath.split(folder)
    if parent == "/" or not name:
        raise BackendError(f"refusing to delete {folder}: too close to the root")
    try:
        # The name goes in as an argument, never into the script: any character is safe.
        out = helper(engine, "sh", "-c", 'if [ -e "$0/$1" ]; then rm -rf "$0/$1" && echo removed; fi',
                     MOUNT, name, folder=parent, what=f"delete {folder} on {engine.describe()}")
    except NotThere:
        return False
    return "removed" in out


def exists(engine: Engine, path: str) -> bool:
    folder = _checked(path)
    try:
        helper(engine, "true", folder=folder, what=f"look for {folder} on {engine.describe()}")
    except NotThere:
        return False
    return True

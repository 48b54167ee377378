"""Reaching an engine: the environment of each docker/compose process, and SSH tunnels.

Every docker and compose command of an instance runs with its engine's environment,
passed to that one process through run.py (never by changing os.environ): `DOCKER_HOST`,
and for ssh:// a folder first in PATH whose `ssh` adds the spec's identity and known_hosts
with host-key checking on (the docker CLI and Compose call `ssh` from PATH and have no
option for its flags). Connections to one host share one SSH master (ControlPersist), so
a docker call costs a few milliseconds after the first.

Tunnels (`ssh -L`) carry health probes, the p95 measurement and the proxy's admin API to
ports that listen on the remote host only; each dies with the envplane process that opened it.
"""

from __future__ import annotations

import contextlib
import ctypes
import hashlib
import os
import shlex
import signal
import socket
import subprocess
import time
from collections.abc import Iterator, Mapping
from pathlib import Path

from envplane.errors import BackendError
from envplane.hosts.engine import Engine

SSH = "/usr/bin/ssh"
DROPPED = ("DOCKER_HOST", "DOCKER_CONTEXT", "DOCKER_TLS_VERIFY", "DOCKER_CERT_PATH", "DOCKER_TLS")


def home() -> Path:
    return Path(os.environ.get("ENVPLANE_HOME") or Path.home() / ".envplane")


def docker_env(engine: Engine, base: Mapping[str, str] | None = None) -> dict[str, str] | None:
    """The environment of a docker/compose process on `engine`; None = envplane's own
    (the local engine: whatever DOCKER_HOST the shell says, as before)."""
    if engine.local:
        return None
    env = {k: v for k, v in (base if base is not None else os.environ).items() if k not in DROPPED}
    env["DOCKER_HOST"] = engine.url
    if engine.kind == "ssh":
        env["PATH"] = f"{ssh_folder(engine)}{os.pathsep}{env.get('PATH', os.defpath)}"
    elif engine.kind == "tcp":
        env["DOCKER_TLS_VERIFY"] = "1"
        env["DOCKER_CERT_PATH"] = str(cert_folder(engine))
    return env


def ssh_options(engine: Engine) -> list[str]:
    """Options of every SSH connection to the engine's host. Host keys are always checked
    against known_hosts (never accepted on first sight); no password prompt ever waits."""
    opts = ["-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=yes", "-o", "ConnectTimeout=15",
            "-o", "ServerAliveInterval=5", "-o", "ServerAliveCountMax=3"]
    if engine.identity:
        opts += ["-o", f"IdentityFile={_expand(engine.identity)}", "-o", "IdentitiesOnly=yes"]
    if engine.known_hosts:
        opts += ["-o", f"UserKnownHostsFile={_expand(engine.known_hosts)}",
                 "-o", "GlobalKnownHostsFile=/dev/null"]
    return opts


def _expand(path: str) -> str:
    return os.path.expanduser(path)


def _digest(*parts: object) -> str:
    return hashlib.sha256(repr(parts).encode()).hexdigest()[:16]


def ssh_folder(engine: Engine) -> Path:
    """A private folder holding `ssh` for this engine's options (written once per options)."""
    opts = ssh_options(engine)
    folder = home() / "ssh" / _digest(engine.key, opts)
    wrapper = folder / "ssh"
    masters = _masters()
    mux = (["-o", "ControlMaster=auto", "-o", f"ControlPath={masters}/%C", "-o", "ControlPersist=60"]
           if masters else [])
    text = ("#!/bin/sh\n# written by envplane for " + engine.key + " (hosts: in envplane.yaml)\n"
            f"exec {SSH} {shlex.join([*opts, *mux])} \"$@\"\n")
    if not wrapper.exists() or wrapper.read_text() != text:
        folder.mkdir(parents=True, exist_ok=True, mode=0o700)
        tmp = folder / f".ssh.{os.getpid()}"
        tmp.write_text(text)
        tmp.chmod(0o700)
        os.replace(tmp, wrapper)
    return folder


def _masters() -> Path | None:
    """The folder of shared SSH connections: short, since a socket path has at most 107
    bytes (`%C` adds 40), and this user's own (0700). None: no sharing, each call connects."""
    for folder in (home() / "ssh" / "cm", Path(f"/tmp/envplane-ssh-{os.getuid()}")):
        if len(str(folder)) > 60:
            continue
        with contextlib.suppress(OSError):
            folder.mkdir(parents=True, exist_ok=True, mode=0o700)
            info = folder.lstat()
            if info.st_uid == os.getuid() and not info.st_mode & 0o077 and folder.is_dir() \
                    and not folder.is_symlink():
                return folder
    return None


def cert_folder(engine: Engine) -> Path:
    """DOCKER_CERT_PATH wants ca.pem, cert.pem and key.pem in one folder: links to the spec's files."""
    assert engine.tls is not None
    folder = home() / "tls" / _digest(engine.key, engine.tls)
    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    for name, source in zip(("ca.pem", "cert.pem", "key.pem"), engine.tls, strict=True):
        path = Path(_expand(source))
        if not path.is_file():
            raise BackendError(f"{engine.describe()}: TLS file {path} does not exist",
                               "fix hosts.<name>.tls in envplane.yaml")
        link = folder / name
        if not link.is_symlink() or os.readlink(link) != str(path):
            link.unlink(missing_ok=True)
            link.symlink_to(path)
    return folder


def ssh_args(engine: Engine, *args: str) -> list[str]:
    """`ssh … user@host -p PORT ARGS` for the engine's host (its own connection, no master)."""
    a = engine.address
    target = f"{a.user}@{a.host}" if a.user else a.host
    return [SSH, *ssh_options(engine), "-o", "ControlMaster=no", "-o", "ControlPath=none",
            "-p", str(a.port), *args, "--", target]


def _die_with_parent() -> None:
    """In the child: SIGTERM when envplane exits, however it exits (Linux prctl)."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


def free_local_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextlib.contextmanager
def tunnel(engine: Engine, ports: list[tuple[str, int]], wait: float = 15.0
           ) -> Iterator[dict[tuple[str, int], tuple[str, int]]]:
    """(remote host address, port) -> (local address, port) reaching it, while the block runs.

    ssh:// hosts: one `ssh -N -L` for all ports (ExitOnForwardFailure). tcp:// hosts are
    reached directly at their address; this machine's engines (local, unix://) at the
    address as it is.
    """
    wanted = list(dict.fromkeys(ports))
    if engine.kind != "ssh" or not wanted:
        host = engine.address.host if engine.kind == "tcp" else None
        yield {(h, p): (host if host and h in ("127.0.0.1", "0.0.0.0", "") else h or "127.0.0.1", p)
               for h, p in wanted}
        return
    local = {w: ("127.0.0.1", free_local_port()) for w in wanted}
    forwards = [arg for (h, p), (lh, lp) in local.items()
                for arg in ("-L", f"{lh}:{lp}:{h if h not in ('', '0.0.0.0') else '127.0.0.1'}:{p}")]
    args = ssh_args(engine, "-N", "-o", "ExitOnForwardFailure=yes", *forwards)
    process = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                               stderr=subprocess.PIPE, preexec_fn=_die_with_parent)
    try:
        _wait_listening(process, list(local.values()), wait, engine)
        yield local
    finally:
        process.terminate()
        try:
            process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        if process.stderr is not None:
            process.stderr.close()


def _wait_listening(process: subprocess.Popen[bytes], addresses: list[tuple[str, int]], wait: float,
                    engine: Engine) -> None:
    deadline = time.monotonic() + wait
    while time.monotonic() < deadline:
        if process.poll() is not None:
            error = process.stderr.read().decode(errors="replace").strip() if process.stderr else ""
            raise BackendError(f"no SSH tunnel to {engine.describe()}: {error[-300:] or 'ssh exited'}",
                               "check that `ssh` with the spec's identity and known_hosts reaches the host")
        if all(_answers(a) for a in addresses):
            return
        time.sleep(0.05)
    process.kill()
    raise BackendError(f"the SSH tunnel to {engine.describe()} did not open within {wait:.0f} s")


def _answers(address: tuple[str, int]) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.5)
        return sock.connect_ex(address) == 0

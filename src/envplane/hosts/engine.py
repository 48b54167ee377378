"""Engines: where an env instance's containers run. Pure: parsing, naming, choosing.

An engine is a Docker endpoint in Docker's own terms (`DOCKER_HOST`): this machine's
default engine, `unix:///path` (another socket here), `ssh://user@host[:port]` (the remote
host's engine through `docker system dial-stdio` over SSH: nothing runs on the server but
sshd and dockerd) or `tcp://host:port` with TLS. The spec's `hosts:` maps host groups and
envs to engines; an env without one runs on the local engine, as before.

`Engine.key` is the engine's identity: two envs on one key share host ports and folders,
so the isolation check compares them (isolation.py), whatever host groups they are in.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal
from urllib.parse import urlsplit

Kind = Literal["local", "unix", "ssh", "tcp"]
DEFAULT_SOCKET = "/var/run/docker.sock"
_USER = re.compile(r"^[a-z_][a-z0-9_.-]{0,31}$")
_LABEL = r"[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
_HOSTNAME = re.compile(rf"^(?=.{{1,253}}$){_LABEL}(\.{_LABEL})*$")


@dataclass(frozen=True)
class Address:
    """A parsed engine URL."""

    kind: Kind
    host: str = ""  # ssh, tcp: a DNS name or an IP (no brackets)
    port: int = 0
    user: str = ""  # ssh
    path: str = ""  # unix

    @property
    def url(self) -> str:
        if self.kind == "local":
            return ""
        if self.kind == "unix":
            return f"unix://{self.path}"
        host = f"[{self.host}]" if ":" in self.host else self.host
        who = f"{self.user}@" if self.user else ""
        return f"{self.kind}://{who}{host}:{self.port}"


def parse(url: str) -> Address:
    """An engine URL as the spec may write it; ValueError says what is wrong with it."""
    if url in ("", "local"):
        return Address("local")
    if not url.isprintable() or any(c.isspace() for c in url):
        raise ValueError("an engine URL has no spaces or control characters")
    scheme, sep, rest = url.partition("://")
    if not sep or scheme not in ("ssh", "unix", "tcp"):
        raise ValueError("must be ssh://user@host[:port], unix:///path or tcp://host:port (with tls:)")
    if scheme == "unix":
        if not rest.startswith("/") or "/../" in rest + "/" or "?" in rest or "#" in rest:
            raise ValueError("unix:// takes an absolute socket path, e.g. unix:///run/user/1000/docker.sock")
        return Address("local") if rest == DEFAULT_SOCKET else Address("unix", path=rest)
    parts = urlsplit(url)
    if parts.path not in ("", "/") or parts.query or parts.fragment or parts.password is not None:
        raise ValueError(f"{scheme}:// takes a host and a port only (no path, query or password)")
    try:
        port = parts.port
    except ValueError:
        raise ValueError("the port must be a number from 1 to 65535") from None
    host = parts.hostname or ""
    if not _host_ok(host):
        raise ValueError(f"{host or '(none)'!r} is not a host name or IP address")
    if scheme == "ssh":
        user = parts.username or ""
        if user and not _USER.match(user):
            raise ValueError(f"{user!r} is not a user name (a-z, 0-9, '_', '-', '.')")
        return Address("ssh", host, port or 22, user)
    if parts.username is not None:
        raise ValueError("tcp:// takes no user: the TLS client certificate says who connects")
    if port is None:
        raise ValueError("tcp:// needs a port, e.g. tcp://203.0.113.10:2376")
    return Address("tcp", host, port)


def _host_ok(host: str) -> bool:
    """A name or address, never something ssh could read as an option (`-oProxyCommand=…`)."""
    if not host or host.startswith("-"):
        return False
    try:
        ipaddress.ip_address(host)
        return True
    except ValueError:
        return bool(_HOSTNAME.match(host))


@dataclass(frozen=True)
class Engine:
    """The engine an env instance runs on, with what it takes to reach it."""

    address: Address = field(default_factory=lambda: Address("local"))
    name: str = "local"  # the `hosts:` key that named it (a host group or an env)
    identity: str | None = None  # ssh: the private key (else ssh-agent's and ~/.ssh's)
    known_hosts: str | None = None  # ssh: a known_hosts file (else ~/.ssh/known_hosts)
    tls: tuple[str, str, str] | None = None  # tcp: CA, client certificate, client key
    # resource -> variable name; left out of the hash (a dict has none), kept in ==
    servers: Mapping[str, str] = field(default_factory=dict, hash=False)
    proxy_listen: str | None = None  # where this host's proxy serves HTTP

    @property
    def kind(self) -> Kind:
        return self.address.kind

    @property
    def local(self) -> bool:
        return self.kind == "local"

    @property
    def remote(self) -> bool:
        """On another machine: its ports and folders are not this machine's."""
        return self.kind in ("ssh", "tcp")

    @property
    def url(self) -> str:
        return self.address.url

    @property
    def key(self) -> str:
        """The engine's identity: one machine's engine, whoever logs in to reach it."""
        a = self.address
        if a.kind == "local":
            return "local"
        if a.kind == "unix":
            return a.url
        host = f"[{a.host}]" if ":" in a.host else a.host
        return f"{a.kind}://{host}:{a.port}"

    def describe(self) -> str:
        """For messages: `hosts.server (ssh://deploy@203.0.113.10:22)`, or `the local engine`."""
        return "the local engine" if self.local else f"hosts.{self.name} ({self.url})"


LOCAL = Engine()


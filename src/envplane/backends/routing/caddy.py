"""Routing through a Caddy on this host, driven by its admin API.

Each instance's routes carry an @id starting with `envplane/{app}/{instance}/`, so
adding or removing them never touches another instance's. An instance's public
services are reached by its domain and by `{first label}.localhost` (the local alias,
`report-pr-7.localhost`), each path prefix going to the service's host port.
"""

from __future__ import annotations

import json
import os
import urllib.error
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from envplane.errors import BackendError
from envplane.target import Target

SERVER = "envplane"
DEFAULT_ADMIN = "http://127.0.0.1:2019"
DEFAULT_LISTEN = "127.0.0.1:8088"


@dataclass(frozen=True)
class Route:
    id: str
    hosts: tuple[str, ...]
    path: str
    upstream: str
    # Blue-green: colour -> upstream, and the folder whose marker file names the live colour.
    colours: tuple[tuple[str, str], ...] = ()
    live_dir: str = ""

    def as_caddy(self) -> dict[str, Any]:
        match: dict[str, Any] = {"host": list(self.hosts)}
        if self.path != "/":
            match["path"] = [self.path.rstrip("/"), self.path.rstrip("/") + "/*"]
        return {
            "@id": self.id,
            "match": [match],
            "handle": [self._colour_switch() if self.colours else _proxy(self.upstream)],
            "terminal": True,
        }

    def _colour_switch(self) -> dict[str, Any]:
        """Per request, the colour whose marker file exists gets it (Caddy's `file` matcher).

        Switching colours is then a file operation, not a config change: Caddy reloads
        its servers on every config change, and a reload under load drops connections.
        In the instant of a switch both markers exist (the first colour wins); a request
        that saw neither goes to whichever colour answers, as both run then.
        """
        routes: list[dict[str, Any]] = [
            {"@id": f"{self.id}/{colour}",
             "match": [{"file": {"root": self.live_dir, "try_files": [colour]}}],
             "handle": [_proxy(upstream)]}
            for colour, upstream in self.colours
        ]
        either = _proxy(*(upstream for _, upstream in self.colours))
        either["load_balancing"] = {"try_duration": "5s", "try_interval": "100ms"}
        return {"handler": "subroute", "routes": [*routes, {"handle": [either]}]}


def _proxy(*upstreams: str) -> dict[str, Any]:
    return {"handler": "reverse_proxy", "upstreams": [{"dial": u} for u in upstreams]}


def instance_prefix(app: str, instance: str) -> str:
    return f"envplane/{app}/{instance}/"


def routes_for(target: Target, upstream_host: str = "127.0.0.1") -> list[Route]:
    """The routes of an instance's public services. Pure."""
    if target.domain is None:
        return []
    hosts = (target.domain, target.domain.split(".", 1)[0] + ".localhost")
    routes = []
    for service in target.services:
        if service.public is None:
            continue
        port = service.public_host_port
        if port is None:
            continue
        routes.append(Route(instance_prefix(target.app, target.id) + service.name,
                            tuple(dict.fromkeys(hosts)), service.public.path, f"{upstream_host}:{port}"))
    return routes


def colour_routes_for(target: Target, ports: Mapping[str, Mapping[str, int]], live_dir: str,
                      upstream_host: str = "127.0.0.1") -> list[Route]:
    """The routes of a blue-green instance: each public service to both colours' ports
    (`ports`: colour -> service -> host port), the live colour picked by marker file. Pure."""
    if target.domain is None:
        return []
    hosts = tuple(dict.fromkeys((target.domain, target.domain.split(".", 1)[0] + ".localhost")))
    routes = []
    for service in target.services:
        if service.public is None or service.public_host_port is None:
            continue
        colours = tuple((colour, f"{upstream_host}:{by_service[service.name]}")
                        for colour, by_service in sorted(ports.items()))
        routes.append(Route(instance_prefix(target.app, target.id) + service.name, hosts,
                            service.public.path, colours[0][1], colours, live_dir))
    return routes


def colour_ports(routes: list[dict[str, Any]]) -> dict[str, dict[str, int]]:
    """colour -> service -> host port, read back from an instance's blue-green routes."""
    found: dict[str, dict[str, int]] = {}
    for route in routes:
        service = str(route.get("@id", "")).rsplit("/", 1)[-1]
        switches = [h for h in route.get("handle", []) if h.get("handler") == "subroute"]
        for sub in (sub for h in switches for sub in h.get("routes", []) if sub.get("@id")):
            colour = str(sub["@id"]).rsplit("/", 1)[-1]
            port = sub["handle"][0]["upstreams"][0]["dial"].rpartition(":")[2]
            if port.isdigit():
                found.setdefault(colour, {})[service] = int(port)
    return found


FALLBACK_ID = "envplane/_unknown-host"
FALLBACK = {
    "@id": FALLBACK_ID,
    "handle": [{"handler": "static_response", "status_code": 404,
                "body": "no envplane instance serves this host\n"}],
    "terminal": True,
}


def ordered(routes: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Longer path prefixes first (/api must win over / on one host); the 404 last."""
    def specificity(route: dict[str, Any]) -> tuple[bool, int]:
        paths = [p for m in route.get("match", []) for p in m.get("path", [])]
        return route.get("@id") == FALLBACK_ID, -max((len(p) for p in paths), default=0)

    with_fallback = [r for r in routes if r.get("@id") != FALLBACK_ID] + [FALLBACK]
    return sorted(with_fallback, key=specificity)


def base_config(listen: str, admin: str) -> dict[str, Any]:
    return {
        "admin": {"listen": admin.removeprefix("http://")},
        # Plain HTTP: the local proxy serves *.localhost and test domains, never certificates.
        "apps": {"http": {"servers": {SERVER: {
            "listen": [listen], "routes": [FALLBACK], "automatic_https": {"disable": True},
        }}}},
    }


class CaddyAdmin:
    def __init__(self, admin: str | None = None) -> None:
        self.admin = (admin or os.environ.get("ENVPLANE_CADDY_ADMIN") or DEFAULT_ADMIN).rstrip("/")

    def _call(self, method: str, path: str, body: Any = None) -> Any:
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(self.admin + path, data=data, method=method,
                                         headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(request, timeout=5) as response:
                text = response.read().decode()
        except urllib.error.HTTPError as exc:
            raise BackendError(f"Caddy refused {method} {path}: {exc.read().decode()[:300]}") from None
        except (urllib.error.URLError, OSError) as exc:
            raise BackendError(f"no Caddy admin API at {self.admin}: {exc}",
                               "start it with `envplane proxy up`") from None
        return json.loads(text) if text.strip() else None

    def answers(self) -> bool:
        try:
            self._call("GET", "/config/")
        except BackendError:
            return False
        return True

    def routes(self) -> list[dict[str, Any]]:
        found = self._call("GET", f"/config/apps/http/servers/{SERVER}/routes")
        return list(found or [])

    def set_routes(self, target: Target) -> list[Route]:
        """Replace the instance's routes, keep everyone else's."""
        mine = routes_for(target)
        self.put_routes(target.app, target.id, [r.as_caddy() for r in mine])
        return mine

    def _split(self, app: str, instance: str) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        """(the instance's routes, everyone else's)."""
        prefix = instance_prefix(app, instance)
        current = self.routes()
        mine = [r for r in current if str(r.get("@id", "")).startswith(prefix)]
        return mine, [r for r in current if r not in mine]

    def instance_routes(self, app: str, instance: str) -> list[dict[str, Any]]:
        return self._split(app, instance)[0]

    def put_routes(self, app: str, instance: str, mine: list[dict[str, Any]]) -> None:
        """One PATCH, so every route of the instance changes at once."""
        self._call("PATCH", f"/config/apps/http/servers/{SERVER}/routes",
                   ordered(self._split(app, instance)[1] + mine))

    def remove_routes(self, app: str, instance: str) -> int:
        mine, others = self._split(app, instance)
        if mine:
            self._call("PATCH", f"/config/apps/http/servers/{SERVER}/routes", ordered(others))
        return len(mine)

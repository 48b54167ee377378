"""Routing through a Caddy on this host, driven by its admin API.

Each instance is one route object of the proxy's route list, `@id` `envplane.{app}.{instance}`
(no `/`: Caddy's `/id/...` endpoints read what follows the first `/` as a path inside
the object). It matches the instance's hosts — its domain and `{first label}.localhost`
(the local alias, `report-pr-7.localhost`) — and holds one route per public service,
longer path prefixes first, each going to the service's host port. Changing an instance
is then one call on its own object (PATCH, DELETE by id, or an insert at the head of the
list), so two commands routing different instances at once never undo each other, and
the 404 fallback stays last: nothing is ever appended after it.
"""

from __future__ import annotations

import json
import os
import urllib.error
import urllib.request
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from envplane.errors import BackendError
from envplane.target import Target, local_alias

SERVER = "envplane"
ROUTES = f"/config/apps/http/servers/{SERVER}/routes"
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
    # Swarm: the same port on every node; a request that cannot reach one tries the next.
    spares: tuple[str, ...] = ()

    def as_caddy(self) -> dict[str, Any]:
        """The service's route inside its instance's route (which matches the hosts)."""
        route: dict[str, Any] = {"@id": self.id}
        if self.path != "/":
            route["match"] = [{"path": [self.path.rstrip("/"), self.path.rstrip("/") + "/*"]}]
        if self.colours:
            route["handle"] = [self._colour_switch()]
        elif self.spares:
            route["handle"] = [_spread(self.upstream, *self.spares)]
        else:
            route["handle"] = [_proxy(self.upstream)]
        return route

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


def _spread(*upstreams: str) -> dict[str, Any]:
    """Any upstream that answers: one being replaced or on a node that is down is skipped
    (a refused connection is retried on another for up to 5 s, and a failed one is left
    alone for 5 s)."""
    handler = _proxy(*upstreams)
    handler["load_balancing"] = {"selection_policy": {"policy": "round_robin"}, "try_duration": "5s",
                                 "try_interval": "50ms"}
    handler["health_checks"] = {"passive": {"fail_duration": "5s", "max_fails": 1}}
    return handler


def instance_id(app: str, instance: str) -> str:
    """The @id of an instance's route. App and instance names have no dots (spec rules)."""
    return f"envplane.{app}.{instance}"


def hosts_of(target: Target) -> tuple[str, ...]:
    """The hosts the proxy serves an instance on: its domain and its `.localhost` alias."""
    assert target.domain is not None
    return tuple(dict.fromkeys((target.domain, local_alias(target.domain))))


def routes_for(target: Target, upstream_host: str = "127.0.0.1") -> list[Route]:
    """The routes of an instance's public services. Pure."""
    if target.domain is None:
        return []
    prefix = instance_id(target.app, target.id)
    return [Route(f"{prefix}/{service.name}", hosts_of(target), service.public.path,
                  f"{upstream_host}:{service.public_host_port}")
            for service in target.services
            if service.public is not None and service.public_host_port is not None]


def colour_routes_for(target: Target, ports: Mapping[str, Mapping[str, int]], live_dir: str,
                      upstream_host: str = "127.0.0.1") -> list[Route]:
    """The routes of a blue-green instance: each public service to both colours' ports
    (`ports`: colour -> service -> host port), the live colour picked by marker file. Pure."""
    routes = []
    for plain in routes_for(target, upstream_host):
        service = plain.id.rsplit("/", 1)[1]
        colours = tuple((colour, f"{upstream_host}:{by_service[service]}")
                        for colour, by_service in sorted(ports.items()))
        routes.append(Route(plain.id, plain.hosts, plain.path, colours[0][1], colours, live_dir))
    return routes


def instance_route(app: str, instance: str, routes: list[Route]) -> dict[str, Any]:
    """The one route object of an instance: its hosts, then its services' routes in order.

    Not terminal: a path none of its services serves goes on to the 404 fallback.
    """
    hosts = list(dict.fromkeys(host for route in routes for host in route.hosts))
    return {
        "@id": instance_id(app, instance),
        "match": [{"host": hosts}],
        "handle": [{"handler": "subroute", "routes": ordered([r.as_caddy() for r in routes])}],
    }


def ordered(routes: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Longer path prefixes first: /api must win over / on one host."""
    def specificity(route: dict[str, Any]) -> int:
        return -max((len(p) for m in route.get("match", []) for p in m.get("path", [])), default=0)

    return sorted(routes, key=specificity)


def service_routes(route: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The services' routes inside an instance's route."""
    return [sub for handler in route.get("handle", []) if handler.get("handler") == "subroute"
            for sub in handler.get("routes", [])]


def colour_ports(route: Mapping[str, Any] | None) -> dict[str, dict[str, int]]:
    """colour -> service -> host port, read back from an instance's blue-green route."""
    found: dict[str, dict[str, int]] = {}
    for service_route in service_routes(route or {}):
        service = str(service_route.get("@id", "")).rsplit("/", 1)[-1]
        for colour_route in service_routes(service_route):
            colour = str(colour_route.get("@id", "")).rsplit("/", 1)[-1]
            dials = upstreams(colour_route)
            port = dials[0].rpartition(":")[2] if "@id" in colour_route and dials else ""
            if port.isdigit():
                found.setdefault(colour, {})[service] = int(port)
    return found


def upstreams(route: Mapping[str, Any]) -> list[str]:
    """The dial addresses of a route's reverse proxy, if it has one."""
    return [str(u.get("dial", "")) for handler in route.get("handle", [])
            if handler.get("handler") == "reverse_proxy" for u in handler.get("upstreams", [])]


@dataclass(frozen=True)
class RouteRow:
    """One line of `envplane proxy routes`."""

    id: str
    hosts: tuple[str, ...]
    path: str
    upstream: str  # `127.0.0.1:41001`, or `blue 127.0.0.1:41001 | green 127.0.0.1:42001`


def route_rows(routes: list[dict[str, Any]]) -> list[RouteRow]:
    """What the proxy holds, one row per service (or per route Caddy holds that is not
    an instance's). Reads any shape without failing: the list may hold routes added by hand."""
    rows = []
    for route in routes:
        hosts = tuple(h for m in route.get("match", []) for h in m.get("host", []))
        inner = service_routes(route) if str(route.get("@id", "")).startswith("envplane.") else []
        for service in inner or [route]:
            paths = [p for m in service.get("match", []) for p in m.get("path", [])]
            colours = [(str(c["@id"]).rsplit("/", 1)[-1], upstreams(c))
                       for c in service_routes(service) if "@id" in c]
            target = (" | ".join(f"{colour} {' '.join(dial)}" for colour, dial in colours) if colours
                      else " ".join(upstreams(service)) or _other_handler(service))
            rows.append(RouteRow(str(service.get("@id", "")), hosts, paths[0] if paths else "/", target))
    return rows


def _other_handler(route: Mapping[str, Any]) -> str:
    handlers = [h for h in route.get("handle", []) if isinstance(h, Mapping)]
    if handlers and handlers[0].get("handler") == "static_response":
        return f"(status {handlers[0].get('status_code', 200)})"
    return f"({handlers[0].get('handler')})" if handlers else ""


FALLBACK_ID = "envplane._unknown-host"
FALLBACK = {
    "@id": FALLBACK_ID,
    "handle": [{"handler": "static_response", "status_code": 404,
                "body": "no envplane instance serves this host\n"}],
    "terminal": True,
}


def base_config(listen: str, admin: str, routes: Sequence[dict[str, Any]] = ()) -> dict[str, Any]:
    """Caddy's whole config: the given instances' routes, then the 404 for every other host.

    Caddy keeps no copy of its own (`persist: false`): the state store is the record,
    and `proxy up` rebuilds this from it.
    """
    return {
        "admin": {"listen": admin.removeprefix("http://"), "config": {"persist": False}},
        # Plain HTTP: the local proxy serves *.localhost and test domains, never certificates.
        "apps": {"http": {"servers": {SERVER: {
            "listen": [listen], "routes": [*routes, FALLBACK], "automatic_https": {"disable": True},
        }}}},
    }


class NotFound(BackendError):
    """Caddy has no object at that path or id."""


class CaddyAdmin:
    # The Host header when the API is reached through a tunnel: Caddy answers only requests
    # naming its own admin address.
    host_header: str | None = None

    def __init__(self, admin: str | None = None) -> None:
        self.admin = (admin or os.environ.get("ENVPLANE_CADDY_ADMIN") or DEFAULT_ADMIN).rstrip("/")

    def _call(self, method: str, path: str, body: Any = None) -> Any:
        data = json.dumps(body).encode() if body is not None else None
        headers = {"Content-Type": "application/json"}
        if self.host_header:
            headers["Host"] = self.host_header
        request = urllib.request.Request(self.admin + path, data=data, method=method, headers=headers)
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                text = response.read().decode()
        except urllib.error.HTTPError as exc:
            kind = NotFound if exc.code == 404 else BackendError
            raise kind(f"Caddy refused {method} {path}: {exc.read().decode()[:300]}") from None
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
        return list(self._call("GET", ROUTES) or [])

    def listen(self) -> list[str]:
        return [str(a) for a in self._call("GET", f"/config/apps/http/servers/{SERVER}/listen") or []]

    def instance(self, app: str, instance: str) -> dict[str, Any] | None:
        try:
            found = self._call("GET", f"/id/{instance_id(app, instance)}")
        except NotFound:
            return None
        return dict(found) if found else None

    def put_instance(self, route: dict[str, Any]) -> None:
        """Replace the instance's route in place, or insert it at the head of the list
        (before the 404 fallback). Caddy applies each call whole and one at a time."""
        try:
            self._call("PATCH", f"/id/{route['@id']}", route)
        except NotFound:
            self._call("PUT", f"{ROUTES}/0", route)

    def remove_instance(self, app: str, instance: str) -> bool:
        try:
            self._call("DELETE", f"/id/{instance_id(app, instance)}")
        except NotFound:
            return False
        return True

    def stop(self) -> None:
        self._call("POST", "/stop")

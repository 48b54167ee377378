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

    def as_caddy(self) -> dict[str, Any]:
        match: dict[str, Any] = {"host": list(self.hosts)}
        if self.path != "/":
            match["path"] = [self.path.rstrip("/"), self.path.rstrip("/") + "/*"]
        return {
            "@id": self.id,
            "match": [match],
            "handle": [{"handler": "reverse_proxy", "upstreams": [{"dial": self.upstream}]}],
            "terminal": True,
        }


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

    def instance_routes(self, app: str, instance: str) -> list[dict[str, Any]]:
        prefix = instance_prefix(app, instance)
        return [r for r in self.routes() if str(r.get("@id", "")).startswith(prefix)]

    def put_routes(self, app: str, instance: str, mine: list[dict[str, Any]]) -> None:
        """One PATCH, so Caddy switches every route of the instance at once (gracefully:
        requests in flight finish on the old upstream)."""
        prefix = instance_prefix(app, instance)
        others = [r for r in self.routes() if not str(r.get("@id", "")).startswith(prefix)]
        self._call("PATCH", f"/config/apps/http/servers/{SERVER}/routes", ordered(others + mine))

    def remove_routes(self, app: str, instance: str) -> int:
        prefix = instance_prefix(app, instance)
        current = self.routes()
        kept = [r for r in current if not str(r.get("@id", "")).startswith(prefix)]
        if len(kept) != len(current):
            self._call("PATCH", f"/config/apps/http/servers/{SERVER}/routes", ordered(kept))
        return len(current) - len(kept)

"""The host's proxy: Caddy, plus the record of every running instance's route.

Every change goes through here, under one host-wide lock (an flock in the proxy's
folder): the record in the state store first, then Caddy, by the instance's @id. The
record is what `proxy up` restores, so it says what should be routed even when Caddy is
down; a proxy that is not running when an instance needs it is started (as Kamal boots
its proxy), with every recorded route in its first config.

The record lives beside the proxy ($ENVPLANE_HOME/proxy/routes.db), not in a project's
state store: the proxy serves every app on this host, and `proxy up` has no project.
"""

from __future__ import annotations

import fcntl
import shutil
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from envplane.backends.routing import caddy_process
from envplane.backends.routing.caddy import CaddyAdmin, Route, instance_route
from envplane.state import proxy_routes
from envplane.state.db import Store, open_store

RECORD = "routes.db"
LOCK = "lock"


@dataclass(frozen=True)
class ProxyState:
    started: bool  # this call started Caddy
    listen: str  # where it serves HTTP
    restored: int  # recorded instance routes put back


@dataclass(frozen=True)
class Routed:
    listen: str  # where the proxy serves HTTP
    changed: bool  # False: Caddy held this route already (its config was left alone)


class Markers(Protocol):
    """Where blue-green live markers are (the files Caddy's `file` matcher reads per request)."""

    def live_dir(self, app: str, instance: str) -> str: ...

    def switch(self, app: str, instance: str, colour: str, other: str, overlap: float) -> None:
        """Make `colour` live: its marker first, `overlap` seconds, then `other`'s removed."""

    def restore(self, app: str, instance: str, colour: str) -> None:
        """Give an instance with no marker at all its recorded live colour back."""

    def drop(self, app: str, instance: str) -> None: ...


class LocalMarkers:
    """Markers on this machine, for this machine's Caddy."""

    def live_dir(self, app: str, instance: str) -> str:
        return str(caddy_process.live_dir(app, instance))

    def switch(self, app: str, instance: str, colour: str, other: str, overlap: float) -> None:
        live = caddy_process.live_dir(app, instance)
        live.mkdir(parents=True, exist_ok=True)
        (live / colour).touch()
        if (live / other).exists():
            time.sleep(overlap)
            (live / other).unlink(missing_ok=True)

    def restore(self, app: str, instance: str, colour: str) -> None:
        _restore_marker(caddy_process.live_dir(app, instance), colour)

    def drop(self, app: str, instance: str) -> None:
        shutil.rmtree(caddy_process.live_dir(app, instance), ignore_errors=True)


Starter = Callable[[str, CaddyAdmin, Sequence[dict[str, Any]], Path], None]


@dataclass
class HostProxy:
    """This machine's proxy by default; a remote host's (hosts/proxy.py) with its own admin
    client, starter, markers and record folder."""

    caddy: CaddyAdmin = field(default_factory=CaddyAdmin)
    folder: Path = field(default_factory=caddy_process.folder)
    start: Starter = caddy_process.start
    markers: Markers = field(default_factory=LocalMarkers)
    default_listen: Callable[[Path], str] = caddy_process.default_listen

    def up(self, listen: str | None = None) -> ProxyState:
        """Start Caddy with every recorded route unless it answers; if it does, put back
        any recorded route it lacks (or holds otherwise). Restores missing live markers."""
        with self._locked() as store:
            return self._up(store, listen, restore=True)

    def down(self) -> bool:
        """Stop Caddy (not while another command changes a route). The record stays."""
        with self._lock():
            return caddy_process.stop(self.caddy, self.folder)

    def set_routes(self, app: str, instance: str, routes: list[Route]) -> Routed:
        """Route the instance (its whole route at once); start the proxy if none answers."""
        route = instance_route(app, instance, routes)
        with self._locked() as store:
            proxy_routes.record(store, app, instance, route)
            state = self._up(store, None, restore=False)
            if state.started:  # its first config has the route
                return Routed(state.listen, True)
            if self.caddy.instance(app, instance) == route:
                return Routed(state.listen, False)
            self.caddy.put_instance(route)
            return Routed(state.listen, True)

    def record_live(self, app: str, instance: str, colour: str) -> None:
        with self._locked() as store:
            proxy_routes.record_live(store, app, instance, colour)

    def remove(self, app: str, instance: str) -> None:
        """Unroute the instance: its record, its route if a proxy runs, its live markers."""
        with self._lock():
            if (self.folder / RECORD).exists():  # else nothing was ever recorded here
                with self._record() as store:
                    proxy_routes.drop(store, app, instance)
            if self.caddy.answers():
                self.caddy.remove_instance(app, instance)
        self.markers.drop(app, instance)

    def routes_instance(self, app: str, instance: str) -> bool:
        """Whether the instance has a route here: recorded, or held by a running Caddy. Reads
        only (no record is created)."""
        if (self.folder / RECORD).exists():
            with self._record() as store:
                if any(r.app == app and r.instance == instance for r in proxy_routes.recorded(store)):
                    return True
        return self.caddy.answers() and self.caddy.instance(app, instance) is not None

    def instance(self, app: str, instance: str) -> dict[str, Any] | None:
        """The instance's route as Caddy holds it (None when it holds none)."""
        return self.caddy.instance(app, instance)

    def _up(self, store: Store, listen: str | None, restore: bool) -> ProxyState:
        records = proxy_routes.recorded(store)
        for record in records:
            if record.live:
                self.markers.restore(record.app, record.instance, record.live)
        if not self.caddy.answers():
            self.start(listen or self.default_listen(self.folder), self.caddy,
                       [dict(r.route) for r in records], self.folder)
            return ProxyState(True, self.caddy.listen()[0], len(records))
        restored = 0
        if restore:
            held = {route.get("@id"): route for route in self.caddy.routes()}
            for record in records:
                if held.get(record.route["@id"]) != record.route:
                    self.caddy.put_instance(dict(record.route))
                    restored += 1
        return ProxyState(False, self.caddy.listen()[0], restored)

    @contextmanager
    def _locked(self) -> Iterator[Store]:
        """The host-wide proxy lock, and the record while it is held."""
        with self._lock(), self._record() as store:
            yield store

    @contextmanager
    def _lock(self) -> Iterator[None]:
        self.folder.mkdir(parents=True, exist_ok=True)
        with (self.folder / LOCK).open("a") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)  # released when the file closes
            yield

    @contextmanager
    def _record(self) -> Iterator[Store]:
        store = open_store(self.folder, f"sqlite:///{self.folder / RECORD}")
        try:
            yield store
        finally:
            store.close()

def _restore_marker(live: Path, colour: str) -> None:
    """A blue-green instance with no marker at all gets its recorded live colour back
    (a switch always leaves one; none means the folder was lost)."""
    if live.is_dir() and any(live.iterdir()):
        return
    live.mkdir(parents=True, exist_ok=True)
    (live / colour).touch()

"""The proxy's routes of running instances: recorded when set, dropped on down.

`proxy up` (and a proxy started by `up`) rebuilds Caddy's routes from these rows, so a
proxy stopped, killed or lost in a reboot comes back routing every instance as before,
blue-green ones to the colour that was live.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from envplane.state.clock import Clock, as_utc, utc_now
from envplane.state.db import Store
from envplane.state.guard import plain_detail
from envplane.state.models import ProxyRouteRow


@dataclass(frozen=True)
class RecordedRoute:
    app: str
    instance: str
    route: Mapping[str, Any]  # the instance's Caddy route object
    live: str | None  # blue-green: the colour its marker names


def record(store: Store, app: str, instance: str, route: Mapping[str, Any],
           clock: Clock = utc_now) -> None:
    """Set the instance's route (keeping its live colour)."""
    plain = plain_detail(route)
    with store.serialised("proxy_routes") as session:
        row = _find(session, app, instance)
        if row is None:
            session.add(ProxyRouteRow(app=app, instance=instance, route=plain, live=None,
                                      updated_at=as_utc(clock())))
        else:
            row.route, row.updated_at = plain, as_utc(clock())


def record_live(store: Store, app: str, instance: str, colour: str, clock: Clock = utc_now) -> None:
    """Name the colour a blue-green instance's marker makes live (its route is recorded first)."""
    with store.serialised("proxy_routes") as session:
        row = _find(session, app, instance)
        if row is not None:
            row.live, row.updated_at = colour, as_utc(clock())


def drop(store: Store, app: str, instance: str) -> None:
    with store.serialised("proxy_routes") as session:
        session.execute(delete(ProxyRouteRow).where(ProxyRouteRow.app == app,
                                                    ProxyRouteRow.instance == instance))


def recorded(store: Store) -> list[RecordedRoute]:
    with store.session() as session:
        rows = session.scalars(select(ProxyRouteRow).order_by(ProxyRouteRow.app, ProxyRouteRow.instance))
        return [RecordedRoute(r.app, r.instance, dict(r.route), r.live) for r in rows]


def _find(session: Session, app: str, instance: str) -> ProxyRouteRow | None:
    return session.scalar(select(ProxyRouteRow).where(ProxyRouteRow.app == app,
                                                      ProxyRouteRow.instance == instance))

"""Webhook deliveries already taken: GitHub may send one delivery twice (a retry, a
redelivery, a replay), and the second must change nothing.

Ids are kept for RETENTION, longer than GitHub offers to redeliver (3 days), in the state
store, so a restarted server still knows them.
"""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import delete, func, select

from envplane.state.clock import Clock, utc_now
from envplane.state.db import Store
from envplane.state.models import WebhookDelivery

RETENTION = timedelta(days=7)


def first_time(store: Store, app: str, delivery: str, clock: Clock = utc_now) -> bool:
    """Record the delivery for `app`; False when it was recorded already."""
    now = clock()
    with store.serialised("webhook-deliveries") as session:
        session.execute(delete(WebhookDelivery).where(WebhookDelivery.received_at < now - RETENTION))
        seen = session.get(WebhookDelivery, (app, delivery))
        if seen is not None:
            return False
        session.add(WebhookDelivery(app=app, delivery=delivery, received_at=now))
        return True


def count(store: Store) -> int:
    with store.session() as session:
        return int(session.scalar(select(func.count()).select_from(WebhookDelivery)) or 0)

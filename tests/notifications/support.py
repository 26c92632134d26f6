"""Helpers of the notification tests: events as the outbox publishes them, rows read straight from
the notification database, inbox rows written directly (for list semantics), API shortcuts."""
from __future__ import annotations

import datetime as dt
import uuid

import sqlalchemy as sa

from models import Notification, NotificationType, db, utcnow


def order_event(event_type: str, buyer, seller, **data) -> dict:
    """An order event shaped like `tasks/orders/actions._record`'s (the outbox payload)."""
    body = {"order_uuid": str(uuid.uuid4()), "buyer_uuid": str(buyer.uuid), "seller_uuid": str(seller.uuid),
            "status": event_type.split(".")[1], "from_status": None, "total_amount": "219.00", "currency": "CNY",
            "actor": str(buyer.uuid), "reason": ""}
    body.update(data)
    return {"event_id": str(uuid.uuid4()), "type": event_type, "occurred_at": utcnow().isoformat(), "data": body}


def rows(stack, model, *where, order_by=None) -> list:
    """Rows of a notification-bind model, detached (read after the session is gone)."""
    with stack.apps["notifications"].app_context():
        found = db.session.scalars(sa.select(model).where(*where).order_by(order_by or model.id)).all()
        db.session.expunge_all()
        return found


def update(stack, model, *where, **values) -> None:
    with stack.apps["notifications"].app_context():
        db.session.execute(sa.update(model).where(*where).values(**values))
        db.session.commit()


def add_notifications(stack, user_uuid: uuid.UUID, kinds: list[str], read: bool = False) -> list[str]:
    """Write inbox rows directly, one per kind, each a second newer than the one before; their uuids."""
    start = utcnow() - dt.timedelta(hours=1)
    made = [Notification(recipient_uuid=user_uuid, type=NotificationType(kind), title=f"{kind} {i}",
                         content=f"body {i}", read=read, read_at=utcnow() if read else None,
                         related_id=f"ref-{i}", related_data='{"n": %d}' % i,
                         created_at=start + dt.timedelta(seconds=i))
            for i, kind in enumerate(kinds)]
    with stack.apps["notifications"].app_context():
        db.session.add_all(made)
        db.session.commit()
        return [str(n.notification_uuid) for n in made]


def inbox(stack, user, query: str = "") -> list[dict]:
    reply = stack.api(user.token).get(f"/api/notifications/?page_size=100{query}")
    assert reply.status == 200, reply.json
    return reply.json["results"]


def deliveries(stack, user, query: str = "") -> list[dict]:
    reply = stack.api(user.token).get(f"/api/notifications/deliveries/?page_size=100{query}")
    assert reply.status == 200, reply.json
    return reply.json["results"]


def set_preferences(stack, user, **body) -> dict:
    reply = stack.api(user.token).request("PUT", "/api/notifications/preferences/", body=body)
    assert reply.status == 200, reply.json
    return reply.json

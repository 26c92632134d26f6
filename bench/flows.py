"""Reading a workflow run back from the databases: the rows are the truth about what happened when.

For each order, from the run's scratch databases (all timestamps from the one machine's clock):
- callback → paid: the sandbox callback's `payment_callbacks.received_at` to the order's `paid`
  audit entry (`order_events`);
- event → inbox: the `order.paid` outbox row's `created_at` to the later of the buyer's and the
  seller's inbox rows (`notifications.created_at`, through their fan-out).
An order is complete (create → paid → notified) once both inbox rows exist.
"""
from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence

import sqlalchemy as sa

from models import Notification, NotificationFanout, Order, OrderEvent, OrderOutbox, db
from models.payment_plumbing import PaymentCallback

PAID_EVENT = "order.paid"


def notified_orders() -> int:
    """Orders with both parties' `order.paid` inbox rows (every order in the scratch DB is ours)."""
    rows = sa.select(NotificationFanout.related_id).join(Notification, Notification.fanout_id == NotificationFanout.id) \
        .where(NotificationFanout.event_type == PAID_EVENT).group_by(NotificationFanout.related_id) \
        .having(sa.func.count() >= 2)
    return db.session.scalar(sa.select(sa.func.count()).select_from(rows.subquery())) or 0


def _chunks(items: Sequence, size: int = 500) -> Iterable[Sequence]:
    for start in range(0, len(items), size):
        yield items[start:start + size]


def latencies(orders: dict[str, str]) -> dict[str, list[float]]:
    """Seconds per order (`{order_uuid: payment_uuid}`), for the orders whose rows are all there."""
    callback_to_paid, event_to_inbox = [], []
    for chunk in _chunks(list(orders)):
        ids = [uuid.UUID(o) for o in chunk]
        paid = dict(db.session.execute(
            sa.select(Order.order_uuid, OrderEvent.created_at).join(OrderEvent, OrderEvent.order_id == Order.id)
            .where(Order.order_uuid.in_(ids), OrderEvent.to_status == "paid")).all())
        references = {f"sbx_{uuid.UUID(orders[o]).hex}": uuid.UUID(o) for o in chunk}
        callbacks = {references[ref]: at for ref, at in db.session.execute(
            sa.select(PaymentCallback.provider_reference, sa.func.min(PaymentCallback.received_at))
            .where(PaymentCallback.provider_reference.in_(list(references)))
            .group_by(PaymentCallback.provider_reference)).all()}
        events = {aggregate: (event_id, at) for aggregate, event_id, at in db.session.execute(
            sa.select(OrderOutbox.aggregate_uuid, OrderOutbox.event_id, OrderOutbox.created_at)
            .where(OrderOutbox.aggregate_uuid.in_(ids), OrderOutbox.event_type == PAID_EVENT)).all()}
        inbox = dict(db.session.execute(
            sa.select(NotificationFanout.event_id, sa.func.max(Notification.created_at))
            .join(Notification, Notification.fanout_id == NotificationFanout.id)
            .where(NotificationFanout.event_id.in_([e for e, _ in events.values()]))
            .group_by(NotificationFanout.event_id).having(sa.func.count() >= 2)).all()) if events else {}
        for order_uuid in ids:
            if order_uuid in paid and order_uuid in callbacks:
                callback_to_paid.append((paid[order_uuid] - callbacks[order_uuid]).total_seconds())
            if order_uuid in events and events[order_uuid][0] in inbox:
                event_id, at = events[order_uuid]
                event_to_inbox.append((inbox[event_id] - at).total_seconds())
    return {"callback_to_paid": callback_to_paid, "event_to_inbox": event_to_inbox}


def percentile(values: Sequence[float], p: float) -> float | None:
    """Nearest-rank percentile; None for no values."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, -(-len(ordered) * p // 100))  # ceil(n·p/100)
    return round(ordered[int(rank) - 1], 4)

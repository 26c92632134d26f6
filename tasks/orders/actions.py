"""What happens to orders, as plain functions over the session; callers commit.

Every state change writes, in the caller's transaction, the row change (a conditional UPDATE), an
audit `OrderEvent` and an outbox event, so the three commit or vanish together.
"""
from __future__ import annotations

import datetime as dt
import logging
import uuid
from decimal import Decimal

import sqlalchemy as sa

from models import (
    SYSTEM_ACTOR, IllegalTransition, Order, OrderEvent, OrderIdempotencyKey, OrderItem, OrderOutbox,
    OrderStatus, db, utcnow,
)
from models.direct_insert import insert_new
from models.sessions import connection_for
from tasks import outbox

log = logging.getLogger(__name__)
PAYMENT_TIMEOUT = "payment_timeout"
REFUNDED = "refunded"
# Internal event (never notified): the payments service refunds a paid order the buyer cancelled.
REFUND_ON_CANCEL = "refund_workflow.order_cancel"
# Audit entries (no status change) of a cancelled paid order's refund: while the latest of them is
# `refund_requested` the refund is in flight and the order cannot be completed; `refund_failed`
# (the payments service's `refund.failed` for that very request) makes it an ordinary paid order again.
REFUND_REQUESTED, REFUND_FAILED = "refund_requested", "refund_failed"

EVENT_TYPES = {
    OrderStatus.PENDING_PAYMENT: "created",
    OrderStatus.PAID: "paid",
    OrderStatus.CANCELLED: "cancelled",
    OrderStatus.COMPLETED: "completed",
}


class RefundRequired(Exception):
    """A paid order can only be cancelled through a refund (`request_refund`)."""


class RefundInProgress(Exception):
    """The buyer cancelled this paid order and its refund is in flight: it cannot be completed."""


def refund_in_flight(order_id: int) -> OrderEvent | None:
    """The `refund_requested` entry of the order's refund in flight, if one is."""
    latest = db.session.scalars(
        sa.select(OrderEvent).where(OrderEvent.order_id == order_id,
                                    OrderEvent.event_type.in_((REFUND_REQUESTED, REFUND_FAILED)))
        .order_by(OrderEvent.id.desc()).limit(1)).first()
    return latest if latest is not None and latest.event_type == REFUND_REQUESTED else None


def _audit_rows(order: Order, actor: str, from_status: OrderStatus | None, reason: str,
                request_id: str) -> tuple[OrderEvent, OrderOutbox]:
    """The audit entry and the outbox event of the change `order` just went through."""
    to_status = order.status
    event_type = EVENT_TYPES[to_status]
    audit = OrderEvent(order_id=order.id, event_type=event_type, actor=actor,
                       from_status=from_status.value if from_status else None, to_status=to_status.value,
                       reason=reason, request_id=request_id)
    event = OrderOutbox.new(f"order.{event_type}", order.order_uuid, {
        "order_uuid": str(order.order_uuid),
        "buyer_uuid": str(order.buyer_uuid),
        "seller_uuid": str(order.seller_uuid),
        "status": to_status.value,
        "from_status": from_status.value if from_status else None,
        "total_amount": f"{order.total_amount:.2f}",
        "currency": order.currency,
        "actor": actor,
        "reason": reason,
    })
    return audit, event


def _record(order: Order, actor: str, from_status: OrderStatus | None, reason: str, request_id: str) -> None:
    """Insert the change's audit row and outbox event in the caller's transaction (Core INSERTs, as
    `create_order` does); the event is published after the commit."""
    audit, event = _audit_rows(order, actor, from_status, reason, request_id)
    connection = connection_for(Order)
    insert_new(connection, [audit])
    insert_new(connection, [event])
    outbox.stage(db.session, [event])


def create_order(buyer_uuid: uuid.UUID, data: dict, request_id: str = "") -> Order:
    """The order, its items, its audit row and its outbox event: four INSERTs in the caller's
    transaction, issued directly (`models.direct_insert`) because this is the busiest write of the
    system and the unit of work cost more than the rows. The event is published after the commit."""
    items = [OrderItem(**item) for item in data["items"]]
    total = sum((item.product_price * item.quantity for item in items), Decimal("0.00"))
    fields = {k: v for k, v in data.items() if k != "items"}
    order = Order(order_uuid=uuid.uuid4(), buyer_uuid=buyer_uuid, total_amount=total,
                  status=OrderStatus.PENDING_PAYMENT, items=items, **fields)
    connection = connection_for(Order)
    insert_new(connection, [order])
    for item in items:
        item.order_id = order.id
    insert_new(connection, items)
    _record(order, str(buyer_uuid), None, "", request_id)
    return order


def cancel_order(order: Order, actor: str, reason: str, request_id: str = "") -> Order:
    """pending_payment → cancelled. Raises IllegalTransition when another change won the race."""
    if order.status is OrderStatus.PAID:
        raise RefundRequired(order.order_uuid)
    previous = order.status
    order.transition(OrderStatus.CANCELLED, cancel_reason=reason or "cancelled_by_buyer")
    _record(order, actor, previous, order.cancel_reason, request_id)
    return order


def request_refund(order: Order, actor: str, reason: str, request_id: str = "") -> Order:
    """Cancelling a paid order refunds it first: ask the payments service, through the outbox, for
    the full refund; the order stays paid until the refund settles (`cancel_refunded`), and cannot
    be completed meanwhile. A cancel while that refund is in flight changes nothing (it is asked
    for already); a cancel after it failed asks again. The conditional UPDATE (a version bump
    while still paid, at the version read) orders this against racing transitions and cancels."""
    version = order.version
    if order.status is OrderStatus.PAID and refund_in_flight(order.id) is not None:
        return order
    result = db.session.execute(
        sa.update(Order)
        .where(Order.id == order.id, Order.status == OrderStatus.PAID, Order.version == version)
        .values(version=Order.version + 1, updated_at=utcnow()).execution_options(synchronize_session=False)
    )
    db.session.expire(order)
    if result.rowcount != 1:
        raise IllegalTransition(order.status, OrderStatus.CANCELLED)
    reason = reason or "cancelled_by_buyer"
    requested = OrderEvent(order_id=order.id, event_type=REFUND_REQUESTED, actor=actor, from_status="paid",
                           to_status="paid", reason=reason, request_id=request_id)
    db.session.add(requested)
    db.session.flush()  # its id names this cancel request: one refund per request (`cancel_id`)
    db.session.add(OrderOutbox.new(REFUND_ON_CANCEL, order.order_uuid, {
        "order_uuid": str(order.order_uuid), "buyer_uuid": str(order.buyer_uuid), "actor": actor,
        "reason": reason, "total_amount": f"{order.total_amount:.2f}", "currency": order.currency,
        "cancel_id": requested.id,
    }))
    log.info("order %s: refund requested by %s before cancelling", order.order_uuid, actor)
    return order


def refund_failed(order_uuid: uuid.UUID, cancel_id: int | None, reason: str) -> bool:
    """The refund of a cancel request failed: the order is an ordinary paid order again (it may be
    completed, or cancelled again, which asks for a new refund). Only the failure of the request
    in flight counts: a late or redelivered failure of an earlier request changes nothing. Events
    from before cancel ids existed (`cancel_id` None) name the request in flight."""
    order = db.session.scalars(sa.select(Order).where(Order.order_uuid == order_uuid)).first()
    if order is None or order.status is not OrderStatus.PAID:
        return False
    version = order.version
    requested = refund_in_flight(order.id)
    if requested is None or (cancel_id is not None and requested.id != cancel_id):
        return False
    result = db.session.execute(  # two deliveries at once: one records it
        sa.update(Order)
        .where(Order.id == order.id, Order.status == OrderStatus.PAID, Order.version == version)
        .values(version=Order.version + 1, updated_at=utcnow()).execution_options(synchronize_session=False))
    if result.rowcount != 1:
        return False
    db.session.add(OrderEvent(order_id=order.id, event_type=REFUND_FAILED, actor=SYSTEM_ACTOR,
                              from_status="paid", to_status="paid", reason=(reason or "refund_failed")[:255],
                              request_id=""))
    log.warning("order %s: the refund of its cancel failed (%s); it is paid again", order_uuid, reason)
    return True


def cancel_refunded(order_uuid: uuid.UUID, actor: str = SYSTEM_ACTOR) -> bool:
    """paid → cancelled (`refunded`) once the order's payment is refunded in full. True also for an
    order already cancelled: a re-run, or an order the timeout sweep cancelled before the money came
    back (refund due). An order completed meanwhile stays completed (False).

    A `pending_payment` order is cancelled too: its payment was captured and refunded in full
    before `orders.mark_paid` ran (a refund accepted right after the capture). The money is back,
    so the order must not become paid: cancelled here, `mark_paid` then finds nothing to pay."""
    order = db.session.scalars(sa.select(Order).where(Order.order_uuid == order_uuid)).first()
    if order is None or order.status not in (OrderStatus.PAID, OrderStatus.PENDING_PAYMENT):
        return order is not None and order.status is OrderStatus.CANCELLED
    previous = order.status
    try:
        order.transition(OrderStatus.CANCELLED, cancel_reason=REFUNDED)
    except IllegalTransition:
        return order.status is OrderStatus.CANCELLED
    _record(order, actor, previous, REFUNDED, "")
    log.info("order %s cancelled: %s", order_uuid, REFUNDED)
    return True


def complete_order(order: Order, actor: str, request_id: str = "") -> Order:
    """paid → completed (the buyer confirms receipt); RefundInProgress while the refund of the
    buyer's cancel is in flight. The UPDATE is conditional on the version read, so a cancel that
    commits in between (it bumps the version) wins and this one gets IllegalTransition."""
    version = order.version
    if order.status is OrderStatus.PAID and refund_in_flight(order.id) is not None:
        raise RefundInProgress(order.order_uuid)
    previous = order.status
    order.transition(OrderStatus.COMPLETED, Order.version == version)
    _record(order, actor, previous, "", request_id)
    return order


def mark_paid(order_uuid: uuid.UUID, payment_method: str, paid_at, actor: str = SYSTEM_ACTOR) -> bool:
    """pending_payment → paid; False when the order is no longer payable (e.g. the sweep won).

    An order paid before answers True: the payments database lets at most one payment per order
    succeed, so this is a re-run of the same capture (redelivered or re-driven) and must not read
    as "the order could not be paid, refund the money".
    """
    order = db.session.scalars(sa.select(Order).where(Order.order_uuid == order_uuid)).first()
    if order is None:
        return False
    if order.status is not OrderStatus.PENDING_PAYMENT:
        return order.payment_time is not None
    try:
        order.transition(OrderStatus.PAID, payment_method=payment_method, payment_time=paid_at)
    except IllegalTransition:
        return order.payment_time is not None
    _record(order, actor, OrderStatus.PENDING_PAYMENT, "", "")
    log.info("order %s paid (%s)", order_uuid, payment_method)
    return True


def expire_unpaid_orders(timeout_seconds: int, batch: int = 200) -> int:
    """Cancel up to `batch` orders unpaid for longer than the timeout, each with a conditional
    UPDATE: an order paid meanwhile no longer matches and stays paid."""
    cutoff = utcnow() - dt.timedelta(seconds=timeout_seconds)
    candidates = db.session.scalars(
        sa.select(Order).where(Order.status == OrderStatus.PENDING_PAYMENT, Order.created_at <= cutoff)
        .order_by(Order.created_at, Order.id).limit(batch)
    ).all()
    cancelled = 0
    for order in candidates:
        try:
            order.transition(OrderStatus.CANCELLED, cancel_reason=PAYMENT_TIMEOUT)
        except IllegalTransition:
            continue
        _record(order, SYSTEM_ACTOR, OrderStatus.PENDING_PAYMENT, PAYMENT_TIMEOUT, "")
        log.info("order %s cancelled: %s", order.order_uuid, PAYMENT_TIMEOUT)
        cancelled += 1
    return cancelled


def purge_idempotency_keys() -> int:
    return db.session.execute(sa.delete(OrderIdempotencyKey).where(OrderIdempotencyKey.expires_at <= utcnow())).rowcount

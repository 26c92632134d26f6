"""Orders-pool tasks: thin wrappers over `tasks.orders.actions`."""
from __future__ import annotations

import datetime as dt
import logging
import uuid

from celery import shared_task
from flask import current_app

from models import OrderOutbox, db
from tasks import outbox
from tasks.orders import actions
from tasks.retries import TASK_OPTIONS, transient_retries

log = logging.getLogger(__name__)
SWEEP_BATCH = 200
MAX_SWEEP_BATCHES = 25


@shared_task(name="orders.mark_paid", **TASK_OPTIONS)
def mark_paid(self, order_uuid: str, payment_method: str, paid_at: str) -> bool:
    with transient_retries(self):
        paid = actions.mark_paid(uuid.UUID(order_uuid), payment_method, dt.datetime.fromisoformat(paid_at))
        db.session.commit()
    return paid


@shared_task(name="orders.on_refunded", **TASK_OPTIONS)
def on_refunded(self, fully_refunded: bool, order_uuid: str) -> bool:
    """After `payments.settle_refund`: a payment refunded in full cancels its order (paid, or still
    pending_payment when the refund overtook `orders.mark_paid`)."""
    if not fully_refunded:
        return False
    with transient_retries(self):
        cancelled = actions.cancel_refunded(uuid.UUID(order_uuid))
        db.session.commit()
    return cancelled


@shared_task(name="orders.on_refund_failed", **TASK_OPTIONS)
def on_refund_failed(self, event: dict) -> bool:
    """`refund.failed` (payments): when it is the refund of the buyer's cancel in flight, the order is
    an ordinary paid order again (completed or cancelled anew). Other refunds change nothing here."""
    data = event["data"]
    if not data.get("order_cancel"):
        return False
    with transient_retries(self):
        recorded = actions.refund_failed(uuid.UUID(data["order_uuid"]), data.get("order_cancel_id"),
                                         data.get("failure_reason") or "")
        db.session.commit()
    return recorded


@shared_task(name="orders.relay_outbox", **TASK_OPTIONS)
def relay_outbox(self) -> int:
    with transient_retries(self):
        return outbox.relay(db.session, OrderOutbox)


@shared_task(name="orders.expire_unpaid_orders", **TASK_OPTIONS)
def expire_unpaid_orders(self) -> int:
    settings = current_app.config["CFMP_SETTINGS"]
    total = 0
    with transient_retries(self):
        for _ in range(MAX_SWEEP_BATCHES):  # bounded: the next beat run continues
            cancelled = actions.expire_unpaid_orders(settings.order_payment_timeout, SWEEP_BATCH)
            db.session.commit()
            total += cancelled
            if cancelled < SWEEP_BATCH:
                break
    return total


@shared_task(name="orders.purge_idempotency_keys", **TASK_OPTIONS)
def purge_idempotency_keys(self) -> int:
    with transient_retries(self):
        purged = actions.purge_idempotency_keys()
        db.session.commit()
    return purged

"""Who consumes which domain event: event-type prefixes → task names (one message per consumer)."""
from __future__ import annotations

SUBSCRIBERS: dict[str, tuple[str, ...]] = {
    # Order events are notified; the order service itself consumes none of them.
    "order.": ("notifications.fanout_event",),
    # Public payment and refund events reach the fan-out only when they have a message to send
    # (tasks/notifications/templates.py; a test keeps the two lists equal): a message per event
    # nobody is told about would only cost a task.
    "payment.failed": ("notifications.fanout_event",),
    "payment.review": ("notifications.fanout_event",),
    "refund.succeeded": ("notifications.fanout_event",),  # buyer and seller
    # The buyer; and the order service, for the refund of a cancelled paid order (paid again).
    "refund.failed": ("notifications.fanout_event", "orders.on_refund_failed"),
    # Payment workflow kick-offs, written with the change that causes them (never notified).
    "payment_workflow.start": ("payments.start_workflow",),
    "payment_workflow.charge": ("payments.charge",),
    "payment_workflow.capture": ("payments.start_capture",),
    # Refunds: the kick-off of a created refund; a paid order the buyer cancelled (written by the
    # order service in its own outbox); money captured for an order that could not keep it.
    "refund_workflow.start": ("payments.start_refund",),
    "refund_workflow.order_cancel": ("payments.refund_cancelled_order",),
    "payment.refund_required": ("payments.refund_due_payment",),
}


def subscribers(event_type: str) -> tuple[str, ...]:
    return tuple(task for prefix, tasks in SUBSCRIBERS.items() if event_type.startswith(prefix) for task in tasks)

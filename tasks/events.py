"""Who consumes which domain event: event-type prefixes → task names (one message per consumer)."""
from __future__ import annotations

SUBSCRIBERS: dict[str, tuple[str, ...]] = {
    "order.": ("orders.record_event", "notifications.fanout_event"),
    # Public payment events: the ones with a template (failed, review; refund.succeeded later) reach
    # the people concerned, the rest are recorded by the fan-out's dedupe and ignored.
    "payment.": ("notifications.fanout_event",),
    "refund.": ("notifications.fanout_event",),  # refund.succeeded, once refunds exist (issue 4)
    # Payment workflow kick-offs, written with the change that causes them (never notified).
    "payment_workflow.start": ("payments.start_workflow",),
    "payment_workflow.charge": ("payments.charge",),
    "payment_workflow.capture": ("payments.start_capture",),
}


def subscribers(event_type: str) -> tuple[str, ...]:
    return tuple(task for prefix, tasks in SUBSCRIBERS.items() if event_type.startswith(prefix) for task in tasks)

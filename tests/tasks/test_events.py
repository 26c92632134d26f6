"""The event routing table: who consumes what."""
from __future__ import annotations

from tasks.events import SUBSCRIBERS, subscribers
from tasks.notifications.templates import TEMPLATES

FANOUT = "notifications.fanout_event"


def test_the_fanout_gets_exactly_the_events_that_have_a_message():
    for event_type in TEMPLATES:
        assert FANOUT in subscribers(event_type), event_type
    routed = {prefix for prefix, tasks in SUBSCRIBERS.items() if FANOUT in tasks}
    for prefix in routed - {"order."}:
        assert prefix in TEMPLATES, f"{prefix} is sent to the fan-out but has no template"
    for silent in ("payment.succeeded", "payment.expired", "payment.cancelled",
                   "payment.refund_required", "payment_workflow.start", "refund_workflow.start"):
        assert FANOUT not in subscribers(silent), silent


def test_internal_kickoffs_have_one_consumer_each():
    assert subscribers("payment_workflow.start") == ("payments.start_workflow",)
    assert subscribers("refund_workflow.order_cancel") == ("payments.refund_cancelled_order",)
    assert subscribers("payment.refund_required") == ("payments.refund_due_payment",)
    assert subscribers("order.paid") == (FANOUT,)  # notified; the order service consumes none of its own
    # A failed refund: the buyer is told, and the order service hears of a cancel's failed refund.
    assert subscribers("refund.failed") == (FANOUT, "orders.on_refund_failed")

"""The fan-out canvas (DESIGN.md §8): per recipient,
`chord(group(one deliver task per enabled channel) | notifications.record_fanout)`.

Header tasks keep their results (`ignore_result=False` on the tasks) because the Redis backend
counts finished parts through them. The body only records what the rows say; if it never fires
(a header task died, or Redis lost the count, reference §2.3) the watchdog records it instead.
"""
from __future__ import annotations

from celery import Celery, chord, group
from celery.canvas import Signature

from tasks.notifications.actions import FanoutPlan

RECORD_FANOUT = "notifications.record_fanout"


def deliver_task(channel: str) -> str:
    """The task that delivers through `channel` (`in_app`, `email`, `webhook`)."""
    return f"notifications.deliver_{channel}"


def fanout(app: Celery, plan: FanoutPlan) -> Signature:
    header = group(app.signature(deliver_task(channel), args=(delivery_id,), immutable=True)
                   for delivery_id, channel in plan.deliveries)
    return chord(header, app.signature(RECORD_FANOUT, args=(plan.fanout_id,)))

"""Who consumes which domain event: event-type prefixes → task names (one message per consumer)."""
from __future__ import annotations

SUBSCRIBERS: dict[str, tuple[str, ...]] = {
    "order.": ("orders.record_event",),
}


def subscribers(event_type: str) -> tuple[str, ...]:
    return tuple(task for prefix, tasks in SUBSCRIBERS.items() if event_type.startswith(prefix) for task in tasks)

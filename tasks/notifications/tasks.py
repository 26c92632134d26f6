"""Notifications-pool tasks: thin wrappers over `actions` and `delivery`.

Delivery tasks are chord header tasks, so they keep their results whatever the global default;
their retries follow the shared policy with the base delay `NOTIFICATION_RETRY_BASE`.
"""
from __future__ import annotations

import logging

from celery import shared_task
from flask import current_app

from models import utcnow
from tasks.notifications import actions, delivery, workflows
from tasks.retries import TASK_OPTIONS, transient_retries

log = logging.getLogger(__name__)
DELIVERY_OPTIONS = {**TASK_OPTIONS, "ignore_result": False}


@shared_task(name="notifications.fanout_event", **TASK_OPTIONS)
def fanout_event(self, event: dict) -> int:
    """Consume a domain event: write its fan-outs once (deduped on the event id), then start one
    chord per recipient. A chord that cannot be sent is left to the watchdog."""
    with transient_retries(self):
        plans = actions.plan_fanout(event, consumer=self.name)
    if plans is None:
        log.info("event %s %s already fanned out", event["type"], event["event_id"])
        return 0
    for plan in plans:  # recipients with at least one channel on
        try:
            workflows.fanout(self.app, plan).apply_async()
        except Exception as exc:  # the broker is away: the rows are committed, the watchdog sends them
            log.warning("fan-out %s left for the watchdog: %s", plan.fanout_id, exc)
    return len(plans)


def _deliver(task, delivery_id: int) -> dict:
    settings = current_app.config["CFMP_SETTINGS"]
    with transient_retries(task, base=settings.notification_retry_base):
        return delivery.deliver(delivery_id, settings)


@shared_task(name="notifications.deliver_in_app", **DELIVERY_OPTIONS)
def deliver_in_app(self, delivery_id: int) -> dict:
    return _deliver(self, delivery_id)


@shared_task(name="notifications.deliver_email", **DELIVERY_OPTIONS)
def deliver_email(self, delivery_id: int) -> dict:
    return _deliver(self, delivery_id)


@shared_task(name="notifications.deliver_webhook", **DELIVERY_OPTIONS)
def deliver_webhook(self, delivery_id: int) -> dict:
    return _deliver(self, delivery_id)


@shared_task(name=workflows.RECORD_FANOUT, **TASK_OPTIONS)
def record_fanout(self, results: list, fanout_id: int) -> str | None:
    """Chord body: `results` are the header's summaries; the outcome is read from the rows."""
    with transient_retries(self):
        return actions.record_fanout(fanout_id)


@shared_task(name="notifications.retry_due_deliveries", **TASK_OPTIONS)
def retry_due_deliveries(self) -> dict:
    """Beat watchdog: re-drive open deliveries nothing tried in time, record settled fan-outs."""
    with transient_retries(self):
        due = actions.take_due_deliveries(utcnow())
        recorded = actions.record_settled_fanouts(utcnow())
    for delivery_id, channel in due:
        self.app.send_task(workflows.deliver_task(channel), args=[delivery_id])
    if due or recorded:
        log.info("watchdog: re-drove %d delivery(ies), recorded %d fan-out(s)", len(due), recorded)
    return {"redriven": len(due), "recorded": recorded}

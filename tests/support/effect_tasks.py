"""A task with one real effect, for the redelivery test: a worker process imports it with `-I`.

The effect is a guarded insert, the way every task guards its effect: a unique (consumer, event id)
row in the orders bind's `order_inbox` (no production consumer writes that table any more, so it
serves here as a plain dedupe table); each run also notes its process id in Redis, so the test sees
who ran it and how often.
"""
from __future__ import annotations

import os
import time
import uuid

import redis
from celery import shared_task
from sqlalchemy.exc import IntegrityError

from models import OrderInbox, db
from tasks.retries import TASK_OPTIONS, transient_retries

CONSUMER = "testing.effect_once"


def runs_key(app, effect_id: str) -> str:
    prefix = app.conf.broker_transport_options.get("global_keyprefix", "")
    return f"{prefix}effect-runs:{effect_id}"


def apply_once(effect_id: str) -> bool:
    """Insert the effect's row and commit; False when it was applied before (the unique key)."""
    db.session.add(OrderInbox(consumer=CONSUMER, event_id=uuid.UUID(effect_id), event_type="testing", payload="{}"))
    try:
        db.session.commit()
    except IntegrityError:
        db.session.rollback()
        return False
    return True


@shared_task(name="orders.testing_effect_once", **TASK_OPTIONS)
def effect_once(self, effect_id: str, linger: float) -> str:
    client = redis.Redis.from_url(self.app.conf.broker_url)
    try:
        client.rpush(runs_key(self.app, effect_id), os.getpid())
    finally:
        client.close()
    with transient_retries(self):
        applied = apply_once(effect_id)
    if applied:
        time.sleep(linger)  # the effect is committed, the message not yet acknowledged: kill me now
    return "applied" if applied else "already applied"

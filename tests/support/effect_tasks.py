"""A task with one real effect, for the redelivery test: a worker process imports it with `-I`.

The effect is the orders consumer's own guarded insert (`actions.record_event`: a unique
(consumer, event id) row), the way every task guards its effect; each run also notes its process
id in Redis, so the test sees who ran it and how often.
"""
from __future__ import annotations

import os
import time

import redis
from celery import shared_task

from tasks.orders import actions
from tasks.retries import TASK_OPTIONS, transient_retries

CONSUMER = "testing.effect_once"


def runs_key(app, effect_id: str) -> str:
    prefix = app.conf.broker_transport_options.get("global_keyprefix", "")
    return f"{prefix}effect-runs:{effect_id}"


@shared_task(name="orders.testing_effect_once", **TASK_OPTIONS)
def effect_once(self, effect_id: str, linger: float) -> str:
    client = redis.Redis.from_url(self.app.conf.broker_url)
    try:
        client.rpush(runs_key(self.app, effect_id), os.getpid())
    finally:
        client.close()
    with transient_retries(self):
        applied = actions.record_event({"event_id": effect_id, "type": "testing"}, consumer=CONSUMER)
    if applied:
        time.sleep(linger)  # the effect is committed, the message not yet acknowledged: kill me now
    return "applied" if applied else "already applied"

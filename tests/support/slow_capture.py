"""Imported into a worker with `-I`: the first run of `payments.capture` commits its effect, then
lingers before the task returns, so a test can kill the worker between the effect and the message's
acknowledgement. Each run notes its process id in Redis (under the test's key prefix).

The patch is applied only in a process started with `CFMP_TEST_SLOW_CAPTURE=1` (the test's worker):
importing this module anywhere else (the test itself, for `runs_key`) changes nothing."""
from __future__ import annotations

import os
import time

import redis

from models import db
from tasks.payments import actions

ENABLE = "CFMP_TEST_SLOW_CAPTURE"
LINGER = 30.0  # seconds: far longer than the test needs to kill the worker
_capture = actions.capture


def runs_key(prefix: str, payment_id: int) -> str:
    return f"{prefix}capture-runs:{payment_id}"


def capture_then_linger(payment_id: int) -> bool:
    captured = _capture(payment_id)
    db.session.commit()
    client = redis.Redis.from_url(os.environ["CELERY_BROKER_URL"])
    try:
        first = client.rpush(runs_key(os.environ.get("CELERY_KEY_PREFIX", ""), payment_id), os.getpid()) == 1
    finally:
        client.close()
    if first:
        time.sleep(LINGER)
    return captured


if os.environ.get(ENABLE) == "1":
    actions.capture = capture_then_linger

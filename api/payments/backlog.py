"""Admission control for new payments: no workflow is started that the pools cannot reach in time.

Each payment's workflow passes through the risk queue once and the payments queue six times, each
time behind whatever is queued. Under sustained overload every workflow waits behind every other,
and past some backlog nearly all of them time out (bench.chaos at twice the capacity: 91 of 918
orders paid). Refusing new payments while the backlog is over `PAYMENT_MAX_BACKLOG` tasks keeps the
admitted ones moving; the buyer is told to retry (503 `overloaded`, `Retry-After`), the order
stays payable, and nothing is written. The queue lengths are read at most every `CACHE_SECONDS` per
process (one pipelined round trip); a broker that cannot be read admits (its own errors follow).
"""
from __future__ import annotations

import threading
import time
from functools import wraps

import redis
from flask import current_app

from api.common.errors import Unavailable
from common.broker import redis_client
from common.settings import Settings

QUEUES = ("risk", "payments")
CACHE_SECONDS = 0.5
RETRY_AFTER = 5

_lock = threading.Lock()
_cached: dict[str, tuple[float, int]] = {}  # key prefix → (monotonic time read, tasks queued)


def queued_tasks(settings: Settings) -> int:
    """Tasks waiting in the risk and payments queues (not those a worker already holds)."""
    prefix, now = settings.celery_key_prefix, time.monotonic()
    with _lock:
        read_at, count = _cached.get(prefix, (float("-inf"), 0))
    if now - read_at < CACHE_SECONDS:
        return count
    pipe = redis_client(settings.broker_url).pipeline(transaction=False)
    for queue in QUEUES:
        pipe.llen(f"{prefix}{queue}")
    try:
        count = sum(pipe.execute())
    except redis.RedisError:  # unreadable: admit, and do not ask again on every request meanwhile
        count = 0
    with _lock:
        _cached[prefix] = (now, count)
    return count


def admit(view):
    """Decorate the view that starts a payment workflow: 503 `overloaded` while the backlog is too long.
    Goes outside `idempotent`, so a refused request claims no key and a retry with it is a new try."""

    @wraps(view)
    def wrapper(*args, **kwargs):
        settings: Settings = current_app.config["CFMP_SETTINGS"]
        if settings.payment_max_backlog:
            queued = queued_tasks(settings)
            if queued > settings.payment_max_backlog:
                raise Unavailable("overloaded", "Payments are backlogged; retry in a few seconds.",
                                  {"queued_tasks": queued}, retry_after=RETRY_AFTER)
        return view(*args, **kwargs)

    return wrapper

"""The failure policy every task shares: retry transient errors with exponential backoff and
jitter, let everything else fail at once (and be dead-lettered by the task base)."""
from __future__ import annotations

import random
from contextlib import contextmanager

from sqlalchemy.exc import OperationalError

from tasks.errors import TransientError

MAX_RETRIES = 5
BASE_DELAY = 1.0
RETRYABLE = (TransientError, OperationalError)

# Options of every @shared_task: at-least-once delivery, so every task is idempotent.
TASK_OPTIONS = {"bind": True, "acks_late": True, "reject_on_worker_lost": True, "max_retries": MAX_RETRIES}


def max_countdown(visibility_timeout: float) -> float:
    """The longest countdown a task may use: half the broker's visibility timeout, at most 10 min.

    Redis hands a message nobody acknowledged within the visibility timeout to another worker; a
    countdown waits unacknowledged, so a longer one would run twice (reference §2.2).
    """
    return min(600.0, visibility_timeout / 2)


def backoff_delay(retries: int, base: float = BASE_DELAY, cap: float = 600.0) -> float:
    """Exponential backoff with "equal jitter": between half and all of base·2ⁿ, capped.

    The jitter spreads a burst of retries apart, and keeping the lower half means the n-th delay is
    never shorter than the (n-1)-th: the delays grow, as operators expect.
    """
    ceiling = min(cap, base * 2**retries)
    return ceiling / 2 + random.uniform(0, ceiling / 2)


@contextmanager
def transient_retries(task, base: float = BASE_DELAY):
    """Turn a transient failure inside the block into `task.retry` with the next backoff delay.

    Past `max_retries`, `retry` re-raises the error itself: the task fails and is dead-lettered.
    """
    try:
        yield
    except RETRYABLE as exc:
        visibility = task.app.conf.broker_transport_options.get("visibility_timeout", 3600)
        delay = backoff_delay(task.request.retries, base, cap=max_countdown(visibility))
        raise task.retry(exc=exc, countdown=delay) from exc

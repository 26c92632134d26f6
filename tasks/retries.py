"""The failure policy every task shares: retry transient errors with exponential backoff and
jitter, let everything else fail at once (and be dead-lettered by the task base)."""
from __future__ import annotations

import random
from contextlib import contextmanager

from sqlalchemy.exc import OperationalError

from tasks.errors import TransientError

MAX_RETRIES = 5
BASE_DELAY = 1.0
MAX_DELAY = 600.0  # celeryconfig.MAX_COUNTDOWN: the broker visibility timeout must exceed it
RETRYABLE = (TransientError, OperationalError)

# Options of every @shared_task: at-least-once delivery, so every task is idempotent.
TASK_OPTIONS = {"bind": True, "acks_late": True, "reject_on_worker_lost": True, "max_retries": MAX_RETRIES}


def backoff_delay(retries: int, base: float = BASE_DELAY) -> float:
    """Exponential backoff with "equal jitter": between half and all of base·2ⁿ, capped.

    The jitter spreads a burst of retries apart, and keeping the lower half means the n-th delay is
    never shorter than the (n-1)-th: the delays grow, as operators expect.
    """
    ceiling = min(MAX_DELAY, base * 2**retries)
    return ceiling / 2 + random.uniform(0, ceiling / 2)


@contextmanager
def transient_retries(task, base: float = BASE_DELAY):
    """Turn a transient failure inside the block into `task.retry` with the next backoff delay.

    Past `max_retries`, `retry` re-raises the error itself: the task fails and is dead-lettered.
    """
    try:
        yield
    except RETRYABLE as exc:
        raise task.retry(exc=exc, countdown=backoff_delay(task.request.retries, base)) from exc

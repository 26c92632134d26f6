"""Tasks that exist only for tests of the shared failure policy; they run on the real worker.

They are named under `orders.` so they route to the orders queue and dead-letter into the orders
database, like any orders task.
"""
from __future__ import annotations

import time
from collections import defaultdict

from celery import shared_task

from tasks.errors import PermanentError, TransientError
from tasks.retries import TASK_OPTIONS, transient_retries

# key → monotonic times of each attempt (the embedded worker runs in this process).
ATTEMPTS: dict[str, list[float]] = defaultdict(list)
FAST = 0.2  # base backoff in seconds, so a test sees several retries quickly


@shared_task(name="orders.testing_flaky", **TASK_OPTIONS)
def flaky(self, key: str, failures: int) -> int:
    ATTEMPTS[key].append(time.monotonic())
    with transient_retries(self, base=FAST):
        if len(ATTEMPTS[key]) <= failures:
            raise TransientError(f"attempt {len(ATTEMPTS[key])} failed")
    return len(ATTEMPTS[key])


@shared_task(name="orders.testing_exhausted", **{**TASK_OPTIONS, "max_retries": 2})
def exhausted(self, key: str) -> None:
    ATTEMPTS[key].append(time.monotonic())
    with transient_retries(self, base=FAST):
        raise TransientError("the provider is still down")


@shared_task(name="orders.testing_permanent", **TASK_OPTIONS)
def permanent(self, key: str) -> None:
    ATTEMPTS[key].append(time.monotonic())
    with transient_retries(self, base=FAST):
        raise PermanentError("card declined")


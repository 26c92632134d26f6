"""Letting the embedded worker finish what a test started before the test's rows are deleted.

The tests share one database per bind and empty it after each test, and on SQLite ids start again
from 1 once a table is empty. A workflow a test left running (a sandbox callback due in 0.3 s, a
chord half done) would run on into the next test and act on that test's rows under the reused ids:
a stale risk aggregate deciding the next test's payment, for one. `drain()` waits until the worker
has nothing running, reserved or scheduled and its queues are empty; whatever is still pending
after the timeout (a retry backing off for minutes) is revoked and its queues purged, so it never
runs. Without an embedded worker started there is nothing to wait for.
"""
from __future__ import annotations

import logging
import time

from celery import Celery
from celery.worker import state

from common.broker import redis_client

log = logging.getLogger(__name__)
_worker: Celery | None = None
_done_at_last_drain = 0  # tasks the worker had run when the last drain returned


def worker_started(celery: Celery) -> None:
    global _worker
    _worker = celery


def worker_stopped() -> None:
    global _worker
    _worker = None


def _pending() -> list:
    return [*state.active_requests, *state.reserved_requests, *state.scheduled_requests]


def _done() -> int:
    return sum(state.total_count.values())


def drain(timeout: float = 10.0, settle: float = 0.1) -> None:
    """Return once the worker has been idle for `settle` seconds (at once when it ran nothing since
    the last drain and nothing waits); after `timeout`, cancel what is left."""
    global _done_at_last_drain
    celery = _worker
    if celery is None:
        return
    broker = redis_client(celery.conf.broker_url)
    prefix = celery.conf.broker_transport_options.get("global_keyprefix", "")
    queues = [f"{prefix}{queue.name}" for queue in celery.conf.task_queues]

    def busy() -> bool:
        return bool(_pending()) or any(broker.llen(queue) for queue in queues)

    deadline, idle_since = time.monotonic() + timeout, None
    if _done() == _done_at_last_drain and not busy():
        return
    while (now := time.monotonic()) < deadline:
        if busy():
            idle_since = None
        elif idle_since is None:
            idle_since = now
        elif now - idle_since >= settle:
            _done_at_last_drain = _done()
            return
        time.sleep(0.02)
    left = _pending()
    log.warning("drain: %d task(s) still pending after %.0f s are revoked, the queues purged", len(left), timeout)
    state.revoked.update(request.id for request in left)
    celery.control.purge()
    _done_at_last_drain = _done()

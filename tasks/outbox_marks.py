"""Marking published outbox rows: one writer thread per process, one UPDATE for many events.

A request (or task) publishes its events right after its commit and then records that it did. Done
in a transaction of its own, that record cost every request a pool checkout, a ping, an UPDATE and a
COMMIT: about 8% of an order create's CPU (py-spy, `bench.api`). Instead the ids are handed to
`marks`, whose thread marks everything handed in during the last `MARK_DELAY` with one UPDATE per
table. Nothing is lost when the process dies before that: the rows stay unpublished and the relay
publishes them again once they are `RELAY_GRACE` old, as the same task ids; consumers dedupe on the
event id. A row is therefore marked a few milliseconds after its request answered, not before.
"""
from __future__ import annotations

import atexit
import logging
import os
import threading
import time

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from models.base import utcnow

log = logging.getLogger(__name__)
MARK_DELAY = 0.05  # seconds a mark waits for others to share its UPDATE
CHUNK = 500  # ids per UPDATE


class PublishedMarks:
    def __init__(self, delay: float = MARK_DELAY):
        self.delay = delay
        self._reset()
        os.register_at_fork(after_in_child=self._reset)  # a forked child starts with none of its parent's

    def _reset(self) -> None:
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._pending: dict[tuple[Engine, type], list[int]] = {}
        self._thread: threading.Thread | None = None

    def add(self, engine: Engine, model: type, ids: list[int]) -> None:
        """Mark these rows of `model` (in `engine`'s database) published, soon."""
        with self._lock:
            self._pending.setdefault((engine, model), []).extend(ids)
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="outbox-marks", daemon=True)
                self._thread.start()
        self._wake.set()

    def _run(self) -> None:
        while True:
            self._wake.wait()
            time.sleep(self.delay)
            self._wake.clear()
            self.flush()

    def flush(self) -> None:
        """Write every pending mark now (the thread's step; also run at exit)."""
        with self._lock:
            pending, self._pending = self._pending, {}
        for (engine, model), ids in pending.items():
            try:
                with engine.begin() as connection:
                    for start in range(0, len(ids), CHUNK):
                        chunk = ids[start:start + CHUNK]
                        connection.execute(sa.update(model).where(model.id.in_(chunk)).values(published_at=utcnow()))
            except Exception as exc:  # the database is away: the relay publishes these again later
                log.warning("outbox: %d published %s row(s) not marked (%s); the relay will publish them again",
                            len(ids), model.__tablename__, exc)


marks = PublishedMarks()
atexit.register(marks.flush)

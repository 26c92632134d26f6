"""Readiness of Celery processes: a worker or beat is ready when it answers `celery inspect ping`.

A live PID proves little: a worker can be up and still not consuming (reference §2.7), and one that
answers a ping over the broker has connected, declared its queues and is reading its mailbox. One
broadcast per poll serves every process still starting, and returns as soon as all of them answered,
so waiting on four pools and beat costs one round trip, not five.
"""
from __future__ import annotations

import time
from typing import TYPE_CHECKING

from kombu.exceptions import OperationalError

from common.cli.supervisor import Child, ReadyCheck
from common.settings import Settings

if TYPE_CHECKING:
    from celery import Celery


class PingReadiness:
    """Readiness checks for `ChildSpec`s, by Celery node name; `stop()` releases the broker connection."""

    def __init__(self, settings: Settings, timeout: float = 0.5, interval: float = 0.3):
        self.settings = settings
        self.timeout = timeout
        self.interval = interval
        self.expected: set[str] = set()
        self.answered: set[str] = set()
        self._next_ping = 0.0
        self._app: Celery | None = None

    def ready(self, node_pattern: str) -> ReadyCheck:
        """The check for the node `node_pattern` (`orders@%h`), as Celery expands it on this host."""
        from celery.utils.nodenames import host_format

        node = host_format(node_pattern)
        self.expected.add(node)

        def check(child: Child) -> bool:
            if node not in self.answered and child.alive:
                self._ping()
            return node in self.answered

        return check

    def _ping(self) -> None:
        now = time.monotonic()
        if now < self._next_ping:
            return
        pending = sorted(self.expected - self.answered)
        try:
            replies = self.app.control.ping(destination=pending, limit=len(pending), timeout=self.timeout)
        except (OSError, OperationalError):  # the broker is away for now: nobody is ready
            replies = []
        for reply in replies:
            self.answered.update(reply)
        self._next_ping = time.monotonic() + self.interval

    @property
    def app(self) -> Celery:
        """A bare Celery app on the same broker and key prefix as the children: no tasks, no Flask."""
        if self._app is None:
            from celery import Celery

            import celeryconfig

            self._app = Celery("cfmp-up", set_as_current=False)
            self._app.config_from_object(celeryconfig.from_settings(self.settings))
        return self._app

    def stop(self) -> None:
        if self._app is not None:
            self._app.close()
            self._app = None

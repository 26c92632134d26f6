"""Is this worker consuming? The answer its Nacos heartbeat and its `/health` endpoint give.

A live process proves little: Celery workers on Redis can stay up and silently stop consuming
(reference §2.7). `ConsumerProbe` asks the consumer itself: its blueprint runs, it consumes one of
its pool's queues, and its event loop turns. For the last, each check hands the loop a callback
(`hub.call_soon`, thread-safe) and the next check looks whether it ran: a loop blocked or gone
(reconnecting, wedged) leaves it pending, and once a callback has waited `stall_after` seconds the
consumer counts as stuck. A solo pool runs tasks inside the loop, so a task in progress there is
not a stall.

`HealthServer` serves `GET /health` on a free port (200 while the probe says alive, 503 otherwise):
the port a pool registers in Nacos, unique per worker process, so several processes of one pool on
one machine are several instances.
"""
from __future__ import annotations

import json
import socketserver
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from celery import bootsteps

STALL_AFTER = 2.0  # seconds a callback may wait for the event loop before the consumer counts as stuck


class ConsumerProbe:
    def __init__(self, consumer: Any, queues: tuple[str, ...], stall_after: float = STALL_AFTER,
                 clock: Callable[[], float] = time.monotonic):
        self.consumer = consumer
        self.queues = queues
        self.stall_after = stall_after
        self.clock = clock
        self._lock = threading.Lock()
        self._sent_at: float | None = None  # when the pending callback was handed to the loop
        self.reason = "not checked yet"

    def _answered(self) -> None:  # runs in the event loop
        with self._lock:
            self._sent_at = None

    def _loop_turns(self) -> bool:
        hub = getattr(self.consumer, "hub", None)
        if hub is None:  # a transport without an event loop: the blueprint state is all there is
            return True
        now = self.clock()
        with self._lock:
            if self._sent_at is not None:
                return now - self._sent_at < self.stall_after or self._busy_in_loop()
            self._sent_at = now
        hub.call_soon(self._answered)
        return True

    def _busy_in_loop(self) -> bool:
        from celery.worker import state

        pool = getattr(self.consumer, "pool", None)
        return bool(pool is not None and type(pool).__module__.endswith(".solo") and state.active_requests)

    def alive(self) -> bool:
        consumer = self.consumer
        task_consumer = getattr(consumer, "task_consumer", None)
        if getattr(consumer.blueprint, "state", None) != bootsteps.RUN or not consumer.connection:
            self.reason = "the consumer is not running (stopped or reconnecting)"
        elif task_consumer is None or not any(task_consumer.consuming_from(q) for q in self.queues):
            self.reason = f"not consuming {', '.join(self.queues)}"
        elif not self._loop_turns():
            self.reason = f"the event loop has not turned for {self.stall_after:.0f}s"
        else:
            self.reason = "consuming"
            return True
        return False


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def server_bind(self) -> None:
        socketserver.TCPServer.server_bind(self)  # no reverse DNS lookup
        self.server_name, self.server_port = self.server_address[:2]


class HealthServer:
    """`GET /health` on (host, free port), from a daemon thread; `stop()` closes it."""

    def __init__(self, host: str, alive: Callable[[], bool], describe: Callable[[], dict]):
        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: object) -> None:
                pass

            def do_GET(self) -> None:
                if self.path.split("?")[0] != "/health":
                    status, body = 404, {"error": "not_found"}
                else:
                    ok = alive()
                    status, body = (200 if ok else 503), {"status": "ok" if ok else "stuck", **describe()}
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self._server = _Server((host, 0), Handler)
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.5,), daemon=True,
                                        name="worker-health")
        self._thread.start()

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

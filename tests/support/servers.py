"""Real HTTP servers on loopback for tests: a WSGI app served by werkzeug in a thread."""
from __future__ import annotations

import gc
import socket
import threading
from dataclasses import dataclass

import redis
from werkzeug.serving import WSGIRequestHandler, make_server

POLL = 0.01  # serve_forever's poll interval: how long stop() waits at most


class _QuietHandler(WSGIRequestHandler):
    """The apps log every request themselves; werkzeug's access line would say it twice."""

    def log(self, type: str, message: str, *args: object) -> None:
        pass


@dataclass
class ServedApp:
    app: object
    url: str
    port: int
    _server: object
    _thread: threading.Thread

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)
        proxy = getattr(self.app, "extensions", {}).get("gateway.proxy")
        if proxy is not None:  # the gateway's upstream connection pool
            proxy.close()


def serve_in_thread(app, host: str = "127.0.0.1") -> ServedApp:
    server = make_server(host, 0, app, threaded=True, request_handler=_QuietHandler)
    thread = threading.Thread(target=server.serve_forever, args=(POLL,), name=f"wsgi-{server.port}", daemon=True)
    thread.start()
    return ServedApp(app=app, url=f"http://{host}:{server.port}", port=server.port, _server=server, _thread=thread)


def closed_port() -> int:
    """A loopback port nothing listens on (bound, read, released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def close_celery(celery) -> None:
    """Close what a Celery app holds open (broker pools, the result backend's pub/sub and client),
    instead of leaving the sockets to the garbage collector."""
    gc.collect()  # finalize dead AsyncResults now: they unsubscribe through the open pub/sub
    backend = celery.backend
    consumer = getattr(backend, "result_consumer", None)
    if consumer is not None:
        consumer.stop()
        # AsyncResult.__del__ unsubscribes through this pub/sub and would reconnect a closed one,
        # leaking a socket; without it there is nothing to unsubscribe from.
        consumer._pubsub = None
    client = getattr(backend, "client", None)
    if client is not None:
        client.connection_pool.disconnect()
    celery.close()


def drop_keys(redis_url: str, prefix: str) -> None:
    """Remove a test's broker and result keys (everything under its key prefix) from the shared
    Redis: kombu's bindings never expire."""
    client = redis.Redis.from_url(redis_url)
    try:
        for key in client.scan_iter(match=f"{prefix}*", count=500):
            client.delete(key)
    finally:
        client.close()

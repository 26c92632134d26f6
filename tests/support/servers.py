"""Real HTTP servers on loopback for tests: a WSGI app served by werkzeug in a thread."""
from __future__ import annotations

import gc
import socket
import socketserver
import threading
from dataclasses import dataclass
from http.server import ThreadingHTTPServer
from typing import Any

import redis
from werkzeug.serving import WSGIRequestHandler, make_server

from common.serve import register_service

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
    registration: Any = None  # common.registry.Registration, when registered in Nacos

    def stop(self, deregister: bool = True) -> None:
        """Deregister (unless `deregister=False`: a crash, Nacos is not told), then stop serving."""
        if self.registration is not None:
            self.registration.stop(deregister=deregister)
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)
        proxy = getattr(self.app, "extensions", {}).get("gateway.proxy")
        if proxy is not None:  # the gateway's upstream connection pool
            proxy.close()


def serve_in_thread(app, host: str = "127.0.0.1", register: dict[str, Any] | None = None) -> ServedApp:
    """Serve `app` on a free port. With `register` (options such as `backoff`, possibly empty), a
    service registers in Nacos as `cfmp serve` does, when its settings name a NACOS_SERVER."""
    server = make_server(host, 0, app, threaded=True, request_handler=_QuietHandler)
    thread = threading.Thread(target=server.serve_forever, args=(POLL,), name=f"wsgi-{server.port}", daemon=True)
    thread.start()
    registration = None if register is None else register_service(app, server.port, **register)
    return ServedApp(app=app, url=f"http://{host}:{server.port}", port=server.port, _server=server, _thread=thread,
                     registration=registration)


class LoopbackHTTPServer(ThreadingHTTPServer):
    """A test HTTP server on 127.0.0.1 (`port` 0: any free one), served from a daemon thread from
    construction on; the base of the remote ends the tests stand in for (echo upstreams, providers, Nacos)."""

    daemon_threads = True

    def __init__(self, handler: type, port: int = 0) -> None:
        super().__init__(("127.0.0.1", port), handler)
        self._thread = threading.Thread(target=self.serve_forever, args=(POLL,), daemon=True,
                                        name=f"{type(self).__name__}-{self.server_port}")
        self._thread.start()

    def server_bind(self) -> None:
        socketserver.TCPServer.server_bind(self)  # skip HTTPServer's reverse DNS lookup
        self.server_name, self.server_port = self.server_address[:2]

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_port}"

    def stop(self) -> None:
        self.shutdown()
        self.server_close()
        self._thread.join(timeout=5)


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

"""Run a Flask app over HTTP: under gunicorn (gthread) normally, or werkzeug's server with `--dev`.

Shared by `cfmp serve SERVICE` and `cfmp gateway`. The app is built before gunicorn forks, so a bad
setting fails once, in the foreground, instead of in every worker. Once the socket is bound, the
real address goes to the log and `listening on http://HOST:PORT` to stdout: with port 0 that line
is the only way a parent (`cfmp up`, a test) learns which port it got. A service then registers that
port in Nacos (when NACOS_SERVER is set) and deregisters when it stops: from gunicorn's master, which
outlives its workers, or from the dev server's process.
"""
from __future__ import annotations

import logging
import signal
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from flask import Flask
from gunicorn.app.base import BaseApplication
from werkzeug.serving import make_server

if TYPE_CHECKING:
    from common.registry import Registration

log = logging.getLogger("cfmp.serve")

LISTENING_PREFIX = "listening on "


# gunicorn (gthread) keeps a keep-alive connection on the worker that accepted it, and a client
# that opens its connections at once (a load generator, the gateway's pool) often lands most of them
# on one worker, whose GIL then caps it at one core. Four workers of four threads spread a 2-core
# machine's connections so that two busy workers are the usual case, not the lucky one.
DEFAULT_WORKERS = 4
DEFAULT_THREADS = 4


@dataclass(frozen=True)
class ServeOptions:
    host: str = "127.0.0.1"
    port: int = 0
    workers: int = DEFAULT_WORKERS
    threads: int = DEFAULT_THREADS
    dev: bool = False
    log_level: str = "INFO"


def url_for_address(host: str, port: int) -> str:
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


def announce(name: str, host: str, port: int) -> None:
    """Report the bound address: one log line, and one stdout line a parent process can parse."""
    url = url_for_address(host, port)
    log.info("%s listening on %s", name, url)
    print(f"{LISTENING_PREFIX}{url}", flush=True)


def register_service(app: Flask, port: int, **options: Any) -> Registration | None:
    """Register a service's app in Nacos at the port it is bound to; None for the gateway (not a
    service) or when NACOS_SERVER is unset. Every way of serving a service calls this once its socket
    is bound: gunicorn's `when_ready`, the dev server, and the test servers (tests/support/servers.py).
    `options` (interval, backoff) go to `common.registry.Registration`."""
    from common.registry import SERVICE_NAMES, register, service_metadata

    service, settings = app.config.get("CFMP_SERVICE"), app.config.get("CFMP_SETTINGS")
    if service not in SERVICE_NAMES or settings is None:
        return None
    return register(settings, SERVICE_NAMES[service], port, service_metadata(), **options)


class GunicornServer(BaseApplication):
    """gunicorn's Python API over an already built app: no config file, no argv parsing."""

    def __init__(self, app: Flask, options: dict[str, Any]):
        self.application = app
        self.options = options
        super().__init__()

    def load_config(self) -> None:
        for key, value in self.options.items():
            self.cfg.set(key, value)

    def load(self) -> Flask:
        return self.application


def gunicorn_options(name: str, options: ServeOptions, when_ready: Callable[[Any], None]) -> dict[str, Any]:
    host = f"[{options.host}]" if ":" in options.host else options.host
    return {
        "bind": [f"{host}:{options.port}"],
        "workers": options.workers,
        "threads": options.threads,
        "worker_class": "gthread",
        "timeout": 30,
        # Short, and below the 10 s after which `cfmp up` sends SIGKILL.
        "graceful_timeout": 5,
        "accesslog": None,  # the apps log every request themselves, with the request id
        "errorlog": "-",
        "loglevel": options.log_level.lower(),
        "proc_name": f"cfmp-{name}",
        # gunicorn >= 25 opens a control socket at one fixed per-user path: several servers on one
        # machine would fight over it, and nothing here uses it.
        "control_socket_disable": True,
        "when_ready": when_ready,
    }


def run_gunicorn(name: str, app: Flask, options: ServeOptions) -> None:
    """Serve until SIGTERM (graceful) or SIGINT (quick); gunicorn exits the process with 0."""

    registrations: list[Registration] = []

    def when_ready(server: Any) -> None:
        for listener in server.LISTENERS:
            host, port = listener.sock.getsockname()[:2]
            announce(name, host, port)
        registration = register_service(app, server.LISTENERS[0].sock.getsockname()[1])
        registrations.extend([registration] if registration else [])

    def on_exit(server: Any) -> None:  # the master, after its workers stopped
        for registration in registrations:
            registration.stop()

    GunicornServer(app, {**gunicorn_options(name, options, when_ready), "on_exit": on_exit}).run()


def run_dev(name: str, app: Flask, options: ServeOptions) -> None:
    """werkzeug's threaded server, no reloader: one process, easy to debug, stopped by SIGTERM/SIGINT."""
    try:
        server = make_server(options.host, options.port, app, threaded=True)
    except OSError as exc:
        print(f"cfmp: cannot listen on {options.host}:{options.port}: {exc.strerror or exc}", file=sys.stderr)
        raise SystemExit(1) from None

    def stop(signum: int, frame: Any) -> None:
        # shutdown() waits for serve_forever() to return, which runs in this very thread: hand it off.
        threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    host, port = server.server_address[:2]
    announce(name, str(host), port)
    registration = register_service(app, port)
    try:
        server.serve_forever()
    finally:
        if registration is not None:
            registration.stop()
        server.server_close()
    log.info("%s stopped", name)


def run(name: str, app: Flask, options: ServeOptions) -> None:
    (run_dev if options.dev else run_gunicorn)(name, app, options)

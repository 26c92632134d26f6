"""A service whose database is unreachable answers 503 `database_unavailable` with `Retry-After`,
logs one warning line per request, writes nothing, and serves again as soon as the database is
back, without a restart. Only failures to reach the database count: other database errors stay 500.

The outage is real: on MariaDB the services reach the server through a loopback TCP proxy the test
closes (new connections refused, open ones dropped) and reopens on the same port; on SQLite the
database's directory is moved away and back (after the app is built: building it creates the
directory of a SQLite file).
"""
from __future__ import annotations

import logging
import socket
import sqlite3
import threading
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pymysql
import pytest
import sqlalchemy as sa
from sqlalchemy.engine import make_url

from api.common.errors import DATABASE_RETRY_AFTER, is_database_unreachable
from common.logging import ContextFilter
from common.settings import Settings
from common.tokens import issue_token
from models.migrate import BINDS, upgrade
from tests.conftest import MYSQL_URL, scratch_mysql
from tests.factories import order_body
from tests.support.client import Api
from tests.support.servers import ServedApp, close_celery, serve_in_thread

LIST_PATHS = {"orders": "/api/orders/", "payments": "/api/payments/", "notifications": "/api/notifications/"}
ERRORS_LOGGER = "api.common.errors"


class TcpProxy:
    """Forwards a loopback port to `target`; `cut()` refuses new connections and drops the open
    ones, as a database server going down does, and `restore()` listens on the same port again."""

    def __init__(self, target: tuple[str, int]):
        self.target = target
        self.port = 0
        self._listener: socket.socket | None = None
        self._open: set[socket.socket] = set()
        self._lock = threading.Lock()
        self.restore()

    def restore(self) -> None:
        if self._listener is not None:
            return  # listening already
        listener = socket.socket()
        try:
            listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            listener.bind(("127.0.0.1", self.port))
            listener.listen(64)
        except OSError:
            listener.close()
            raise
        self.port = listener.getsockname()[1]
        self._listener = listener
        threading.Thread(target=self._accept, args=(listener,), daemon=True,
                         name=f"tcp-proxy-{self.port}").start()

    def cut(self) -> None:
        listener, self._listener = self._listener, None
        if listener is not None:
            listener.shutdown(socket.SHUT_RDWR)  # wakes the blocked accept()
            listener.close()
        with self._lock:
            sockets, self._open = self._open, set()
        for sock in sockets:
            _close(sock)

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return  # cut
            try:
                upstream = socket.create_connection(self.target, timeout=5)
                upstream.settimeout(None)
            except OSError:
                _close(client)
                continue
            with self._lock:
                self._open.update((client, upstream))
            for source, sink in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(source, sink), daemon=True).start()

    def _pump(self, source: socket.socket, sink: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                sink.sendall(data)
        except OSError:
            pass
        for sock in (source, sink):
            with self._lock:
                self._open.discard(sock)
            _close(sock)


def _close(sock: socket.socket) -> None:
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass
    sock.close()


@dataclass
class Database:
    """Every service bind on one database behind a switch."""

    backend: str
    settings: Settings
    cut: Callable[[], None]
    restore: Callable[[], None]  # a no-op when the database is on


@pytest.fixture(scope="module")
def _switched(backend, settings, tmp_path_factory) -> Iterator[Database]:
    if backend == "mysql":
        real = make_url(settings.database_urls["orders"])  # the run's scratch database, migrated
        proxy = TcpProxy((real.host, real.port or 3306))
        url = real.set(host="127.0.0.1", port=proxy.port).render_as_string(hide_password=False)
        yield Database(backend, settings.replace(database_urls={bind: url for bind in BINDS}),
                       proxy.cut, proxy.restore)
        proxy.cut()
        return
    home = tmp_path_factory.mktemp("switched") / "db"
    away = home.with_name("db.away")
    switched = settings.replace(database_urls={bind: f"sqlite:///{home / bind}.db" for bind in BINDS})
    upgrade(switched)

    def restore() -> None:
        if away.exists():
            away.rename(home)

    yield Database(backend, switched, lambda: home.rename(away), restore)


@pytest.fixture
def database(_switched: Database) -> Iterator[Database]:
    """The switched database, on again after the test whatever the test left it in."""
    yield _switched
    _switched.restore()


@contextmanager
def served(settings: Settings, service: str = "orders") -> Iterator[ServedApp]:
    """One service app over real HTTP on loopback, its engines and Celery closed afterwards."""
    from common.cli.apps import load_factory, service_app
    from models.base import db

    app = load_factory(service_app(service))(settings)
    server = serve_in_thread(app)
    try:
        yield server
    finally:
        server.stop()
        with app.app_context():
            for engine in db.engines.values():
                engine.dispose()
        close_celery(app.extensions["celery"])


@pytest.fixture
def user(settings) -> tuple[uuid.UUID, str]:
    user_uuid = uuid.uuid4()
    return user_uuid, issue_token(settings, user_uuid)


def assert_database_unavailable(reply) -> None:
    assert reply.status == 503, reply.raw
    assert reply.json == {"error": "database_unavailable", "message": reply.json["message"], "details": {},
                          "request_id": reply.headers["X-Request-ID"]}
    assert reply.headers["Retry-After"] == str(DATABASE_RETRY_AFTER)
    assert 1 <= DATABASE_RETRY_AFTER <= 30


@pytest.mark.parametrize("service", list(LIST_PATHS))
def test_every_service_answers_503_while_its_database_is_down(database, user, service):
    with served(database.settings, service) as server:
        database.cut()
        assert_database_unavailable(Api(server.url, user[1]).get(LIST_PATHS[service]))


def test_one_warning_line_with_the_request_id_and_no_traceback(database, user, caplog):
    caplog.set_level(logging.WARNING)
    caplog.set_level(logging.WARNING, logger=ERRORS_LOGGER)  # the embedded worker may raise the root level
    caplog.handler.addFilter(ContextFilter("orders"))  # what tags every line in a deployed service
    with served(database.settings) as server:
        database.cut()
        api = Api(server.url, user[1])
        for request_id in ("db-down-1", "db-down-2"):
            assert_database_unavailable(api.get("/api/orders/", headers={"X-Request-ID": request_id}))
    warnings = [r for r in caplog.records if r.name == ERRORS_LOGGER]
    assert [(r.levelno, r.request_id) for r in warnings] == [(logging.WARNING, "db-down-1"),
                                                             (logging.WARNING, "db-down-2")]
    assert "database unreachable" in warnings[0].getMessage()
    assert [r for r in caplog.records if r.exc_info or r.levelno >= logging.ERROR] == []


def test_a_create_during_the_outage_writes_nothing_and_succeeds_once_the_database_is_back(database, user):
    buyer, token = user
    body, key = order_body(uuid.uuid4()), {"Idempotency-Key": f"outage-{buyer}"}
    with served(database.settings) as server:
        database.cut()
        api = Api(server.url, token)
        assert_database_unavailable(api.post("/api/orders/", body, headers=key))
        database.restore()
        assert api.get("/api/orders/").json["count"] == 0  # nothing of the refused create was kept
        created = api.post("/api/orders/", body, headers=key)  # the same key: no claim was left behind
        assert created.status == 201, created.raw
        assert "Idempotent-Replayed" not in created.headers
        assert api.get("/api/orders/").json["count"] == 1


@pytest.mark.mariadb_only  # an open SQLite file survives its directory moving away
def test_an_outage_of_a_running_service_is_503_then_2xx_again_without_a_restart(database, user):
    _, token = user
    with served(database.settings) as server:
        api = Api(server.url, token)
        assert api.get("/api/orders/").status == 200  # the pool now holds live connections
        database.cut()
        for _ in range(3):  # stale pooled connections and refused new ones alike
            assert_database_unavailable(api.get("/api/orders/"))
        assert_database_unavailable(api.post("/api/orders/", order_body(uuid.uuid4())))
        database.restore()
        assert api.get("/api/orders/").json["count"] == 0
        assert api.post("/api/orders/", order_body(uuid.uuid4())).status == 201
        assert api.get("/api/orders/").json["count"] == 1


@pytest.mark.mariadb_only  # SQLite has no server to restart
def test_a_database_restart_between_requests_goes_unnoticed(database, user):
    """Every pooled connection died with the server; the pool's pre-ping replaces them."""
    _, token = user
    with served(database.settings) as server:
        api = Api(server.url, token)
        assert api.get("/api/orders/").status == 200
        database.cut()
        database.restore()
        assert api.get("/api/orders/").status == 200
        assert api.post("/api/orders/", order_body(uuid.uuid4())).status == 201


def test_the_gateway_passes_the_503_through(database, user):
    from gateway import create_app as create_gateway

    with served(database.settings) as server:
        database.cut()
        upstreams = {**database.settings.upstreams, "orders": server.url}
        gateway = serve_in_thread(create_gateway(database.settings.replace(upstreams=upstreams)))
        try:
            reply = Api(gateway.url, user[1]).get("/api/orders/", headers={"X-Request-ID": "through-gw"})
        finally:
            gateway.stop()
    assert_database_unavailable(reply)
    assert reply.json["request_id"] == "through-gw"


@pytest.fixture
def tableless(backend, settings, tmp_path) -> Iterator[Settings]:
    """Settings whose database answers but holds no tables: every query is an error of its own."""
    if backend == "mysql":
        with scratch_mysql(MYSQL_URL) as url:
            yield settings.replace(database_urls={bind: url for bind in BINDS})
    else:
        yield settings.replace(database_urls={bind: f"sqlite:///{tmp_path / bind}.db" for bind in BINDS})


def test_other_database_errors_stay_500(tableless, user, caplog):
    caplog.set_level(logging.ERROR, logger=ERRORS_LOGGER)
    with served(tableless) as server:
        reply = Api(server.url, user[1]).get("/api/orders/")
    assert reply.status == 500 and reply.json["error"] == "internal_error"
    assert "Retry-After" not in reply.headers
    assert any(r.name == ERRORS_LOGGER and r.exc_info for r in caplog.records)  # the traceback is kept


@pytest.mark.mariadb_only
def test_refused_credentials_stay_500(backend, settings, user):
    """An OperationalError that is not about the connection (MySQL 1045) is a configuration bug."""
    url = make_url(settings.database_urls["orders"]).set(password="not-the-password")
    url = url.render_as_string(hide_password=False)
    wrong = settings.replace(database_urls={bind: url for bind in BINDS})
    with served(wrong) as server:
        reply = Api(server.url, user[1]).get("/api/orders/")
    assert reply.status == 500 and reply.json["error"] == "internal_error"


def _sa(cls, orig, invalidated=False):
    """`orig` wrapped the way SQLAlchemy wraps a driver's error."""
    return cls("SELECT 1", {}, orig, connection_invalidated=invalidated)


_mysql = pymysql.err


@pytest.mark.parametrize("exc, unreachable", [
    (_sa(sa.exc.OperationalError, _mysql.OperationalError(2003, "Can't connect to MySQL server")), True),
    (_sa(sa.exc.OperationalError, _mysql.OperationalError(2006, "MySQL server has gone away")), True),
    (_sa(sa.exc.OperationalError, _mysql.OperationalError(2013, "Lost connection during query")), True),
    (_sa(sa.exc.OperationalError, _mysql.OperationalError(2055, "Lost connection at handshake")), True),
    (_sa(sa.exc.InterfaceError, _mysql.InterfaceError(0, ""), invalidated=True), True),
    (_sa(sa.exc.OperationalError, sqlite3.OperationalError("unable to open database file")), True),
    (sa.exc.DisconnectionError("connection dropped on checkout"), True),
    (_sa(sa.exc.OperationalError, _mysql.OperationalError(1045, "Access denied")), False),
    (_sa(sa.exc.OperationalError, _mysql.OperationalError(1213, "Deadlock found")), False),
    (_sa(sa.exc.OperationalError, sqlite3.OperationalError("no such table: orders")), False),
    (_sa(sa.exc.OperationalError, sqlite3.OperationalError("database is locked")), False),
    (_sa(sa.exc.IntegrityError, _mysql.IntegrityError(1062, "Duplicate entry")), False),
    (_sa(sa.exc.ProgrammingError, _mysql.ProgrammingError(1064, "You have an error in your SQL")), False),
    (_sa(sa.exc.IntegrityError, _mysql.IntegrityError(2003, "not a connection error class")), False),
    (ConnectionRefusedError(111, "Connection refused"), False),  # not the database's: the broker, a provider
], ids=lambda value: type(value).__name__ if isinstance(value, BaseException) else str(value))
def test_only_failures_to_reach_the_database_count(exc, unreachable):
    assert is_database_unreachable(exc) is unreachable


def test_a_missing_sqlite_directory_is_a_real_connection_failure(tmp_path):
    """What the classification is fed on SQLite comes from the driver itself, not from the test."""
    engine = sa.create_engine(f"sqlite:///{Path(tmp_path) / 'missing' / 'orders.db'}")
    with pytest.raises(sa.exc.OperationalError) as raised:
        engine.connect()
    engine.dispose()
    assert is_database_unreachable(raised.value)

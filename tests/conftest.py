"""Fixtures every test tier shares: settings per database backend, a real Redis, and the running
stack (order service and gateway over real HTTP on loopback)."""
from __future__ import annotations

import os
import uuid
from contextlib import contextmanager
from dataclasses import dataclass

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import make_url

from common.settings import Settings
from common.tokens import issue_token
from models.migrate import upgrade
from tests.support import draining
from tests.support.client import Api
from tests.support.servers import ServedApp, close_celery, drop_keys, serve_in_thread

TEST_SECRET = "test-secret-" + "0123456789abcdef" * 4  # 64+ bytes: HS512 forgeries need no shorter key
DEFAULT_MYSQL_URL = "mysql+pymysql://cfmp_test:cfmp_test@127.0.0.1:3306/cfmp_test"
BINDS = ("orders", "payments", "notifications")


def _mysql_url() -> str | None:
    """TEST_MYSQL_URL, or the scratch database `.ci/run` creates when it is reachable here."""
    url = os.environ.get("TEST_MYSQL_URL")
    if url:
        return url
    engine = sa.create_engine(DEFAULT_MYSQL_URL, poolclass=sa.pool.NullPool)
    try:
        with engine.connect():
            return DEFAULT_MYSQL_URL
    except sa.exc.OperationalError:
        return None
    finally:
        engine.dispose()


MYSQL_URL = _mysql_url()


def pytest_configure(config):
    # nacos-sdk-python's classic client builds `ssl.SSLContext()` for every call, plain HTTP included
    # (reference §3.2); under filterwarnings=error that would fail every registry call in tests.
    config.addinivalue_line(
        "filterwarnings",
        r"ignore:ssl\.(SSLContext\(\) without protocol argument|PROTOCOL_TLS) is deprecated:DeprecationWarning")


@contextmanager
def scratch_mysql(base_url: str):
    """A database of its own for this test run (`<name>_<random>`), dropped afterwards, so two
    runs sharing one MariaDB never see each other's tables."""
    url = make_url(base_url)
    name = f"{url.database}_{uuid.uuid4().hex[:10]}"
    engine = sa.create_engine(url, poolclass=sa.pool.NullPool)
    with engine.begin() as connection:
        connection.execute(sa.text(f"CREATE DATABASE `{name}` CHARACTER SET utf8mb4"))
    try:
        yield url.set(database=name).render_as_string(hide_password=False)
    finally:
        with engine.begin() as connection:
            connection.execute(sa.text(f"DROP DATABASE IF EXISTS `{name}`"))
        engine.dispose()


@pytest.fixture(scope="session")
def redis_url():
    from common.localredis import ensure_redis

    local = ensure_redis(Settings(env="test"))
    yield local.url
    local.stop()


def pytest_collection_modifyitems(config, items):
    """Tests marked `mariadb_only` are about a database server: their SQLite copies are deselected
    (not collected as skips)."""
    dropped = [item for item in items if item.get_closest_marker("mariadb_only")
               and getattr(item, "callspec", None) and item.callspec.params.get("backend") == "sqlite"]
    if dropped:
        config.hook.pytest_deselected(items=dropped)
        gone = set(dropped)
        items[:] = [item for item in items if item not in gone]


@pytest.fixture(scope="session", params=["sqlite", pytest.param("mysql", marks=pytest.mark.mysql)])
def backend(request) -> str:
    if request.param == "mysql" and MYSQL_URL is None:
        if os.environ.get("CI"):
            pytest.fail("CI must test on MariaDB: set TEST_MYSQL_URL (.ci/run does)")
        pytest.skip("no MariaDB here: set TEST_MYSQL_URL to run the MariaDB half")
    return request.param


@pytest.fixture(scope="session")
def database_urls(backend, tmp_path_factory):
    if backend == "mysql":
        with scratch_mysql(MYSQL_URL) as url:
            yield {bind: url for bind in BINDS}  # table names are unique across binds
    else:
        root = tmp_path_factory.mktemp("sqlite")
        yield {bind: f"sqlite:///{root / bind}.db" for bind in BINDS}


@pytest.fixture(scope="session")
def settings(backend, database_urls, redis_url, tmp_path_factory) -> Settings:
    root = tmp_path_factory.mktemp(f"cfmp-{backend}")
    urls = database_urls
    settings = Settings(
        env="test", database_urls=urls, broker_url=redis_url, result_backend=redis_url,
        celery_key_prefix=f"cfmp-test-{uuid.uuid4().hex[:12]}:",
        jwt_secret=TEST_SECRET, log_dir=str(root / "logs"), var_dir=str(root / "var"),
    )
    upgrade(settings)
    yield settings
    drop_keys(settings.broker_url, settings.celery_key_prefix)



@dataclass
class Stack:
    """Every registered service (common/cli/apps.py) and the gateway, served over real HTTP."""

    settings: Settings
    apps: dict
    services: dict[str, ServedApp]
    gateway: ServedApp

    @property
    def orders_app(self):
        return self.apps["orders"]

    @property
    def orders(self) -> ServedApp:
        return self.services["orders"]

    def api(self, token: str | None = None) -> Api:
        """A client of the gateway, as REST clients use the system."""
        return Api(self.gateway.url, token)

    def direct(self, token: str | None = None, service: str = "orders") -> Api:
        """A client of one service's own port, bypassing the gateway."""
        return Api(self.services[service].url, token)

    def truncate(self) -> None:
        """Empty every table, once the workflows the test started are over (`tests.support.draining`)."""
        from models.base import db

        draining.drain()
        for app in self.apps.values():
            with app.app_context():
                for bind in app.config["CFMP_BINDS"]:
                    with db.engines[bind].begin() as connection:
                        for table in reversed(db.metadatas[bind].sorted_tables):
                            connection.execute(table.delete())


@pytest.fixture(scope="session")
def running(settings):
    from common.cli.apps import load_factory, registered_services, service_app
    from gateway import create_app as create_gateway

    apps = {name: load_factory(service_app(name))(settings) for name in registered_services()}
    services = {name: serve_in_thread(app) for name, app in apps.items()}
    upstreams = {**settings.upstreams, **{name: served.url for name, served in services.items()}}
    gateway = serve_in_thread(create_gateway(settings.replace(upstreams=upstreams)))
    yield Stack(settings, apps, services, gateway)
    gateway.stop()
    for name, served in services.items():
        served.stop()
        close_celery(apps[name].extensions["celery"])


@pytest.fixture
def stack(running):
    """The running system, emptied after the test."""
    yield running
    running.truncate()


@pytest.fixture(scope="session")
def worker_app(settings):
    """The Flask app tasks run in, with its Celery app (the worker's configuration)."""
    from workers import create_worker_app, init_celery

    app = create_worker_app(settings)
    init_celery(app)
    return app


@pytest.fixture(scope="session")
def worker(worker_app):
    """A real Celery worker (embedded, threads pool) consuming every queue on the real Redis.

    Yields the Celery app: `worker.send_task(name, args)` goes through the broker to it.
    """
    from celery.contrib.testing.worker import start_worker

    import tests.support.test_tasks  # noqa: F401  (registers the failure-policy test tasks)
    from celeryconfig import QUEUES

    celery = worker_app.extensions["celery"]
    with start_worker(celery, pool="threads", concurrency=4, perform_ping_check=False,
                      queues=[*QUEUES, "default"], shutdown_timeout=10):
        draining.worker_started(celery)
        try:
            yield celery
        finally:
            draining.worker_stopped()
    close_celery(celery)


@dataclass(frozen=True)
class User:
    uuid: uuid.UUID
    token: str


@pytest.fixture
def make_user(settings):
    def make(role: str = "user") -> User:
        user_uuid = uuid.uuid4()
        return User(user_uuid, issue_token(settings, user_uuid, role=role))

    return make


@pytest.fixture
def buyer(make_user) -> User:
    return make_user()


@pytest.fixture
def seller(make_user) -> User:
    return make_user()


@pytest.fixture
def stranger(make_user) -> User:
    return make_user()

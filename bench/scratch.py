"""The disposable resources of one run: MariaDB databases, a Redis key prefix, a directory.

All created under names unique to the run, so a benchmark never touches what tests or other
engineers use on the same servers, and all removed by `Scratch.cleanup()` whatever happened.
"""
from __future__ import annotations

import os
import shutil
import tempfile
import uuid
from dataclasses import dataclass, field

import pymysql
import redis

MYSQL = {"host": os.environ.get("BENCH_MYSQL_HOST", "127.0.0.1"),
         "port": int(os.environ.get("BENCH_MYSQL_PORT", "3306")),
         "user": os.environ.get("BENCH_MYSQL_USER", "cfmp_test"),
         "password": os.environ.get("BENCH_MYSQL_PASSWORD", "cfmp_test")}
REDIS_URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379")
DB_STEMS = {"orders": "ORDER", "payments": "PAYMENT", "notifications": "NOTIFICATION"}
# What the server has been asked, by kind (SHOW GLOBAL STATUS): round trips that reach MariaDB.
STATEMENT_COUNTERS = ("Questions", "Com_select", "Com_insert", "Com_update", "Com_delete", "Com_commit",
                      "Com_rollback")


def _mysql(server: dict | None = None) -> pymysql.connections.Connection:
    return pymysql.connect(**(server or MYSQL), autocommit=True)


def mysql_url(database: str, server: dict | None = None) -> str:
    server = server or MYSQL
    return (f"mysql+pymysql://{server['user']}:{server['password']}@{server['host']}:{server['port']}"
            f"/{database}?charset=utf8mb4")


@dataclass
class Scratch:
    run_id: str = field(default_factory=lambda: uuid.uuid4().hex[:8])
    databases: list[str] = field(default_factory=list)
    directory: str = ""
    # The servers the run uses: the shared ones by default; `bench.chaos` passes private ones.
    mysql: dict = field(default_factory=lambda: dict(MYSQL))
    redis_url: str = REDIS_URL

    @property
    def key_prefix(self) -> str:
        return f"bench-{self.run_id}:"

    def create_database(self, name: str) -> str:
        """`cfmp_test_bench_<run>_<name>` (the test user's grant covers `cfmp\\_test%`); its URL."""
        database = f"cfmp_test_bench_{self.run_id}_{name}"
        with _mysql(self.mysql) as connection, connection.cursor() as cursor:
            cursor.execute(f"CREATE DATABASE `{database}` CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci")
        self.databases.append(database)
        return mysql_url(database, self.mysql)

    def service_env(self) -> dict[str, str]:
        """One database per service, as deployed (DESIGN.md §1: each service owns its DB)."""
        return {f"{stem}_DB_URL": self.create_database(name) for name, stem in DB_STEMS.items()}

    def make_directory(self) -> str:
        self.directory = tempfile.mkdtemp(prefix=f"cfmp-bench-{self.run_id}-")
        return self.directory

    def statements(self) -> dict[str, int]:
        """The server's statement counters so far; server-wide, so whoever else uses it counts too."""
        with _mysql(self.mysql) as connection, connection.cursor() as cursor:
            cursor.execute("SHOW GLOBAL STATUS WHERE Variable_name IN %s", (STATEMENT_COUNTERS,))
            return {name: int(value) for name, value in cursor.fetchall()}

    def redis_keys(self) -> int:
        """How many keys carry this run's prefix, over both Celery databases."""
        return sum(sum(1 for _ in redis.Redis.from_url(f"{self.redis_url}/{db}").scan_iter(f"{self.key_prefix}*"))
                   for db in (0, 1))

    def cleanup(self) -> None:
        for database in self.databases:
            try:
                with _mysql(self.mysql) as connection, connection.cursor() as cursor:
                    cursor.execute(f"DROP DATABASE IF EXISTS `{database}`")
            except pymysql.MySQLError as exc:
                print(f"[bench] could not drop {database}: {exc}")
        self.databases.clear()
        for db in (0, 1):
            client = redis.Redis.from_url(f"{self.redis_url}/{db}")
            for batch in _batches(client.scan_iter(f"{self.key_prefix}*", count=1000), 500):
                client.delete(*batch)
        if self.directory:
            shutil.rmtree(self.directory, ignore_errors=True)


def _batches(items, size):
    batch = []
    for item in items:
        batch.append(item)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch

"""Engine options per backend: SQLite made safe for threads and processes, MariaDB made robust."""
from __future__ import annotations

import sqlite3

import sqlalchemy as sa
from sqlalchemy.engine import Engine, make_url


@sa.event.listens_for(Engine, "connect")
def _sqlite_pragmas(dbapi_connection, _record) -> None:
    if isinstance(dbapi_connection, sqlite3.Connection):
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA journal_mode=WAL")  # readers never wait for the writer
        cursor.execute("PRAGMA busy_timeout=30000")  # writers queue instead of failing
        cursor.close()


def engine_options(url: str) -> dict:
    """Flask-SQLAlchemy bind options (`{"url": ..., **engine kwargs}`) for one database URL."""
    backend = make_url(url).get_backend_name()
    if backend == "sqlite":
        return {"url": url, "connect_args": {"timeout": 30, "check_same_thread": False}}
    return {
        "url": url,
        "pool_pre_ping": True,
        "pool_recycle": 1800,
        "pool_size": 10,
        "max_overflow": 20,
        # Conditional UPDATEs read the latest committed row either way; READ COMMITTED avoids the
        # gap locks that make concurrent inserts deadlock under REPEATABLE READ.
        "isolation_level": "READ COMMITTED",
    }

"""Engine options per backend: SQLite made safe for threads and processes, MariaDB made robust."""
from __future__ import annotations

import sqlite3

import pymysql
import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine, make_url
from sqlalchemy.pool import Pool

# Set on a pooled MariaDB connection's record while the last thing SQLAlchemy did on it was a COMMIT
# or ROLLBACK: nothing can be left open, so the ROLLBACK the pool would send on its return is skipped.
_SETTLED = "cfmp_settled"


@sa.event.listens_for(Engine, "connect")
def _sqlite_pragmas(dbapi_connection, _record) -> None:
    if isinstance(dbapi_connection, sqlite3.Connection):
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA journal_mode=WAL")  # readers never wait for the writer
        cursor.execute("PRAGMA busy_timeout=30000")  # writers queue instead of failing
        cursor.close()


def _set_settled(connection: Connection | None, settled: bool) -> None:
    """Record on the pooled connection whether a ROLLBACK on return would be pointless. An invalidated
    connection is skipped: the pool discards it, and reaching its `info` would try to reconnect, which
    SQLAlchemy refuses inside the transaction being rolled back (PendingRollbackError, found by
    bench.chaos at a MariaDB restart: a 503 turned into a 500, a teardown into gunicorn's HTML 500)."""
    if connection is not None and not connection.invalidated and not connection.closed:
        connection.info[_SETTLED] = settled


@sa.event.listens_for(Pool, "checkout")
def _unsettled_on_checkout(_dbapi_connection, record, _proxy) -> None:
    record.info[_SETTLED] = False  # a raw DBAPI user (`raw_connection()`) gets the reset as before


@sa.event.listens_for(Engine, "begin")
def _began(connection: Connection) -> None:
    _set_settled(connection, False)


@sa.event.listens_for(Engine, "commit")
def _committing(connection: Connection) -> None:
    _set_settled(connection, True)  # fired before the COMMIT: a failed one is unsettled by handle_error


@sa.event.listens_for(Engine, "rollback")
def _rolling_back(connection: Connection) -> None:
    _set_settled(connection, True)


@sa.event.listens_for(Engine, "handle_error")
def _failed(context) -> None:
    _set_settled(context.connection, False)


@sa.event.listens_for(Pool, "reset")
def _reset_unless_settled(dbapi_connection, record, _state) -> None:
    """The pool's reset for MariaDB engines (built with `pool_reset_on_return=None`): ROLLBACK only
    when the connection may hold an open transaction. SQLAlchemy's own reset rolls back after every
    COMMIT a session makes (the session closes its connection after committing), one round trip per
    request and per task for nothing. Other engines keep SQLAlchemy's reset; this adds nothing there."""
    if isinstance(dbapi_connection, pymysql.connections.Connection) and not record.info.get(_SETTLED, False):
        dbapi_connection.rollback()


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
        "pool_reset_on_return": None,  # `_reset_unless_settled` resets instead
        "max_overflow": 20,
        # Conditional UPDATEs read the latest committed row either way; READ COMMITTED avoids the
        # gap locks that make concurrent inserts deadlock under REPEATABLE READ.
        "isolation_level": "READ COMMITTED",
    }

"""MariaDB connections go back to the pool without the ROLLBACK a COMMIT made pointless, and with
one whenever a transaction may still be open (its row locks are released)."""
from __future__ import annotations

import pytest
import sqlalchemy as sa
from sqlalchemy.orm import Session

from models.engine import engine_options

pytestmark = pytest.mark.mariadb_only


@pytest.fixture
def engine(settings):
    options = engine_options(settings.database_urls["orders"])
    engine = sa.create_engine(options.pop("url"), **{**options, "pool_size": 1, "max_overflow": 0})
    with engine.begin() as connection:
        connection.execute(sa.text("CREATE TABLE IF NOT EXISTS reset_probe (id INT PRIMARY KEY)"))
        connection.execute(sa.text("DELETE FROM reset_probe"))
        connection.execute(sa.text("INSERT INTO reset_probe VALUES (1)"))
    yield engine
    with engine.begin() as connection:
        connection.execute(sa.text("DROP TABLE reset_probe"))
    engine.dispose()


@pytest.fixture
def rollbacks(engine, monkeypatch):
    """Counts the ROLLBACKs sent on the pool's one connection, by whoever sends them."""
    counted = []
    with engine.connect() as connection:
        raw = connection.connection.dbapi_connection
    original = raw.rollback

    def rollback():
        counted.append(1)
        original()

    monkeypatch.setattr(raw, "rollback", rollback)
    return counted


def _row_is_free(engine) -> bool:
    """Whether another connection can lock the probe row right now."""
    other = sa.create_engine(engine.url, poolclass=sa.pool.NullPool)
    try:
        with other.connect() as connection:
            connection.execute(sa.text("SET SESSION innodb_lock_wait_timeout = 1"))
            try:
                connection.execute(sa.text("SELECT id FROM reset_probe WHERE id = 1 FOR UPDATE"))
            except sa.exc.OperationalError as exc:
                assert "Lock wait timeout" in str(exc)
                return False
            return True
    finally:
        other.dispose()


def test_a_session_commit_returns_the_connection_without_a_rollback(engine, rollbacks):
    with Session(engine) as session:
        session.execute(sa.text("UPDATE reset_probe SET id = 1 WHERE id = 1"))
        session.commit()
    assert rollbacks == []
    assert _row_is_free(engine)


def test_a_read_only_request_is_rolled_back_once(engine, rollbacks):
    with Session(engine) as session:
        session.execute(sa.text("SELECT id FROM reset_probe"))
    assert rollbacks == [1]  # the session's own, not a second one from the pool


def test_a_locking_read_left_open_is_rolled_back_and_its_lock_released(engine, rollbacks):
    connection = engine.connect()
    connection.execute(sa.text("SELECT id FROM reset_probe WHERE id = 1 FOR UPDATE"))
    assert not _row_is_free(engine)
    connection.close()
    assert rollbacks == [1]
    assert _row_is_free(engine)


def test_a_statement_after_the_commit_unsettles_the_connection(engine, rollbacks):
    with engine.connect() as connection:
        connection.execute(sa.text("SELECT 1"))
        connection.commit()
        connection.execute(sa.text("SELECT id FROM reset_probe WHERE id = 1 FOR UPDATE"))
        assert not _row_is_free(engine)
    assert rollbacks == [1]
    assert _row_is_free(engine)


def test_raw_dbapi_use_is_reset_as_before(engine, rollbacks):
    raw = engine.raw_connection()
    cursor = raw.cursor()
    cursor.execute("SELECT id FROM reset_probe WHERE id = 1 FOR UPDATE")
    cursor.close()
    assert not _row_is_free(engine)
    raw.close()  # back to the pool: only the pool's reset can release the lock
    assert rollbacks == [1]
    assert _row_is_free(engine)

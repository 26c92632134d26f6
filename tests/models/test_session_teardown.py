"""An app context whose database connection died ends quietly: the session's closing ROLLBACK has
nothing left to undo (the server ended the transaction with the connection), so its failure must
not turn a finished request into gunicorn's HTML 500, or a finished task into a failure.

Found by bench.chaos under load (two HTML 500s and a payments dead letter around the MariaDB
restart); reproduced here by killing the session's connection from another one between the
request's work and its teardown."""
from __future__ import annotations

import logging

import pymysql
import pytest
import sqlalchemy as sa
from sqlalchemy.engine import make_url

from models import db
from workers import create_worker_app

pytestmark = pytest.mark.mariadb_only


def kill(settings, connection_id: int) -> None:
    url = make_url(settings.database_urls["orders"])
    other = pymysql.connect(host=url.host, port=url.port or 3306, user=url.username, password=url.password,
                            database=url.database)
    try:
        with other.cursor() as cursor:
            cursor.execute(f"KILL {int(connection_id)}")
    finally:
        other.close()


def connection_id() -> int:
    return db.session.scalar(sa.text("SELECT CONNECTION_ID()"), bind_arguments={"bind": db.engines["orders"]})


def test_a_context_whose_connection_was_killed_mid_transaction_ends_quietly(settings, caplog):
    app = create_worker_app(settings)
    context = app.app_context()
    context.push()
    killed = connection_id()  # the session's transaction is open now, as after a request's reads
    kill(settings, killed)
    with caplog.at_level(logging.WARNING, logger="models.sessions"):
        context.pop()  # raised OperationalError (2013, lost connection) from the teardown's ROLLBACK
    assert any("could not roll back" in r.getMessage() for r in caplog.records), caplog.text
    with app.app_context():  # the pool threw the dead connection away: the next context works
        assert db.engines["orders"].pool.checkedout() == 0  # nothing held by the failed session
        assert connection_id() != killed


def test_other_errors_at_teardown_still_raise(settings, monkeypatch):
    app = create_worker_app(settings)
    with pytest.raises(RuntimeError, match="not a lost connection"):
        with app.app_context():
            connection_id()

            def broken_close():
                raise RuntimeError("not a lost connection")

            monkeypatch.setattr(db.session(), "close", broken_close)


def test_a_statement_that_lost_its_connection_leaves_a_session_that_rolls_back_and_ends(settings):
    """The disconnect is noticed by a statement (so SQLAlchemy invalidates the connection inside the
    session's transaction): the rollback that follows, and the context's end, must not raise. The
    pool-reset bookkeeping (models/engine.py) once reached into the invalidated connection there and
    raised PendingRollbackError: the request's 503 became a 500 and its teardown an HTML 500."""
    app = create_worker_app(settings)
    with app.app_context():
        killed = connection_id()
        kill(settings, killed)
        with pytest.raises(sa.exc.OperationalError) as lost:
            connection_id()
        assert lost.value.connection_invalidated
        db.session.rollback()
    with app.app_context():
        assert db.engines["orders"].pool.checkedout() == 0
        assert connection_id() != killed

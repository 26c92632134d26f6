"""Binding the models to a Flask app, with a session teardown that survives a lost connection.

Flask-SQLAlchemy ends each app context (a request, a task) by closing its session, which rolls back
the transaction a read left open. When the database connection died after the work was done (the
server restarted, the connection was killed), that ROLLBACK raises from the teardown: a request
already answered becomes gunicorn's HTML 500, and a task that did its work fails and is
dead-lettered. Nothing is left to undo by then (the server ended the transaction with the
connection), so `init_app` puts a teardown in front of Flask-SQLAlchemy's that closes the session
itself and, on a lost connection only, invalidates it (the pool forgets the dead connection) and
logs one line. Any other error still raises.
"""
from __future__ import annotations

import logging

import sqlalchemy as sa
from flask import Flask

from models.base import db

log = logging.getLogger(__name__)


def connection_for(model: type) -> sa.Connection:
    """The session's connection to `model`'s database, in the session's current transaction: for
    Core statements on hot paths (`db.session.commit()` and `rollback()` end them as usual)."""
    return db.session.connection(bind_arguments={"mapper": model})


def init_app(app: Flask) -> None:
    db.init_app(app)
    # Flask runs teardowns in reverse order of registration: this one first, then Flask-SQLAlchemy's,
    # which finds no session left to remove.
    app.teardown_appcontext(_end_session)


def _end_session(_exc: BaseException | None = None) -> None:
    try:
        db.session.remove()
    except sa.exc.DBAPIError as exc:
        if not exc.connection_invalidated:
            raise
        log.warning("could not roll back the session at the end of the context, its connection is gone: %s",
                    f"{type(exc.orig).__name__}: {exc.orig}"[:300])
        if db.session.registry.has():  # `remove` failed before forgetting the session
            try:
                db.session.registry().invalidate()  # close what is left; the dead connection is discarded
            except sa.exc.DBAPIError:
                pass
        db.session.registry.clear()

"""Core statements for the notifications pool's hot paths, on the session's own connection.

A fan-out, a delivery attempt and a chord body each write or read a few rows by key. Through the
ORM (the unit of work, or `db.session.execute` of an ORM-enabled statement) every one of those
statements costs ~100 µs of CPU more than its Core form, which is as much as a third of the
round trip itself. Executed on `connection()` they belong to the session's transaction all the
same: `db.session.commit()` and `db.session.rollback()` end them, and the session's connection
handling (pool checkout, reset on return) is unchanged.
"""
from __future__ import annotations

import sqlalchemy as sa

from models import Notification, NotificationDelivery, NotificationFanout, NotificationInbox
from models.sessions import connection_for

deliveries = NotificationDelivery.__table__
fanouts = NotificationFanout.__table__
inbox = NotificationInbox.__table__
notifications = Notification.__table__


def connection() -> sa.Connection:
    """The session's connection to the notifications database, in its current transaction."""
    return connection_for(NotificationDelivery)

"""The fan-out's bookkeeping as plain functions over the session: turning an event into rows,
recording a finished fan-out, finding what the chords left undone, and manual redelivery.

Everything an event causes (the consumer's inbox row, one fan-out per recipient, one delivery row
per enabled channel) commits in one transaction, *before* any message is sent: a crash after the
commit loses nothing, because the watchdog finds the pending rows.
"""
from __future__ import annotations

import datetime as dt
import json
import logging
import uuid
from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError

from models import OPEN_STATUSES, DeliveryStatus, NotificationDelivery, NotificationFanout, db, utcnow
from tasks.notifications import core, templates
from tasks.notifications.delivery import MAX_ATTEMPTS, preferences_for

log = logging.getLogger(__name__)
Delivery, Fanout = NotificationDelivery, NotificationFanout
# How long the watchdog leaves an open delivery or an unrecorded fan-out to the normal path (the
# chord, a scheduled retry) before it steps in; also how long it waits after re-driving one.
REDRIVE_GRACE = dt.timedelta(seconds=60)
REDRIVE_BATCH = 200
NO_CHANNEL = "no channel enabled"

# The statements of a fan-out and of its chord body, built once with bind parameters (see
# `delivery.CLAIM`). The multi-row INSERTs return their ids in the order of the rows given, where
# the database has INSERT … RETURNING (MariaDB 10.5+, SQLite); MySQL, which compose deploys, has not.
INSERT_INBOX = sa.insert(core.inbox)
INSERT_FANOUTS, INSERT_DELIVERIES = sa.insert(core.fanouts), sa.insert(core.deliveries)
RETURNING_IDS = {insert: insert.returning(insert.table.c.id, sort_by_parameter_order=True)
                 for insert in (INSERT_FANOUTS, INSERT_DELIVERIES)}
_delivery, _fanout = core.deliveries.c, core.fanouts.c
SETTLED = (sa.select(_delivery.channel, _delivery.status)
           .where(_delivery.fanout_id == sa.bindparam("fanout")).order_by(_delivery.id))
# Sets the parameters `recorded_at` and `outcome`.
RECORD = sa.update(core.fanouts).where(_fanout.id == sa.bindparam("fanout"), _fanout.recorded_at.is_(None))


@dataclass(frozen=True)
class FanoutPlan:
    """What to dispatch for one recipient: the fan-out and its (delivery id, channel) pairs."""

    fanout_id: int
    deliveries: tuple[tuple[int, str], ...]


def plan_fanout(event: dict, consumer: str) -> list[FanoutPlan] | None:
    """Write the rows an event causes and commit; None when this consumer had the event already.

    Four statements whatever the number of recipients: the inbox row (first, so a duplicate stops
    before any other work), everyone's preferences, the fan-outs and the deliveries (multi-row
    INSERTs that return their ids)."""
    now = utcnow()
    event_id = uuid.UUID(event["event_id"])
    people = [(uuid.UUID(user), role) for user, role in templates.recipients(event)]
    connection = core.connection()
    try:
        connection.execute(INSERT_INBOX, {
            "consumer": consumer, "event_id": event_id, "event_type": event["type"], "received_at": now,
            "payload": json.dumps(event, separators=(",", ":"))})
        preferences = preferences_for([user for user, _ in people])
        shared = {"event_id": event_id, "event_type": event["type"], "created_at": now,
                  "related_data": json.dumps({"event_type": event["type"], **(event.get("data") or {})},
                                             separators=(",", ":"))}
        planned = []
        for user, role in people:
            language, channels = preferences[user].language, preferences[user].enabled_channels()
            planned.append((_fanout_row(event, shared, user, role, language, channels), channels))
        fanout_ids = _insert_returning_ids(INSERT_FANOUTS, [fanout for fanout, _ in planned])
        wanted = [(fanout_id, fanout["recipient_uuid"], channel)
                  for fanout_id, (fanout, channels) in zip(fanout_ids, planned) for channel in channels]
        delivery_ids = _insert_returning_ids(INSERT_DELIVERIES, [
            {"fanout_id": fanout_id, "event_id": event_id, "recipient_uuid": user, "channel": channel,
             "max_attempts": MAX_ATTEMPTS, "next_attempt_at": now, "created_at": now, "updated_at": now}
            for fanout_id, user, channel in wanted])
        db.session.commit()
    except IntegrityError:
        db.session.rollback()
        return None
    by_fanout: dict[int, list[tuple[int, str]]] = {}
    for delivery_id, (fanout_id, _, channel) in zip(delivery_ids, wanted):
        by_fanout.setdefault(fanout_id, []).append((delivery_id, channel.value))
    return [FanoutPlan(fanout_id, tuple(pairs)) for fanout_id, pairs in by_fanout.items()]


def _fanout_row(event: dict, shared: dict, user: uuid.UUID, role: str, language: str, channels: list) -> dict:
    """The fan-out of one recipient: `shared` (what every recipient's row has) plus the message
    rendered in their language; recorded at once ("no channel enabled") when every channel is off."""
    text = templates.render(event, role, language)
    return {**shared, "recipient_uuid": user, "role": role, "language": templates.language_of(language),
            "type": text.type, "title": text.title, "content": text.content, "related_id": text.related_id,
            "recorded_at": None if channels else shared["created_at"],
            "outcome": "" if channels else NO_CHANNEL}


def _insert_returning_ids(statement: sa.Insert, values: list[dict]) -> list[int]:
    """Insert the rows and return their ids, in order: with one statement (SQLAlchemy's
    "insertmanyvalues") where the database returns ids from a multi-row INSERT, else a row at a time."""
    if not values:
        return []
    connection = core.connection()
    if connection.dialect.insert_executemany_returning_sort_by_parameter_order:
        return list(connection.execute(RETURNING_IDS[statement], values).scalars())
    return [connection.execute(statement, row).inserted_primary_key[0] for row in values]


def record_fanout(fanout_id: int) -> str | None:
    """Record the outcome once every channel settled; None while one is still open or when it
    was recorded before. The outcome is read from the rows, never from chord arguments."""
    connection = core.connection()
    settled = connection.execute(SETTLED, {"fanout": fanout_id}).all()
    if any(status in OPEN_STATUSES for _, status in settled):
        return None
    outcome = " ".join(f"{channel.value}:{status.value}" for channel, status in settled) or NO_CHANNEL
    result = connection.execute(RECORD, {"fanout": fanout_id, "recorded_at": utcnow(), "outcome": outcome})
    db.session.commit()
    return outcome if result.rowcount == 1 else None


def take_due_deliveries(now: dt.datetime, batch: int = REDRIVE_BATCH) -> list[tuple[int, str]]:
    """Open deliveries nothing has tried within the grace (a chord that never ran, a lost retry,
    a worker that died holding the lease); pushed back one grace so the next run skips them."""
    rows = db.session.execute(
        sa.select(Delivery.id, Delivery.channel)
        .where(Delivery.status.in_(OPEN_STATUSES), Delivery.next_attempt_at <= now - REDRIVE_GRACE,
               sa.or_(Delivery.locked_until.is_(None), Delivery.locked_until <= now))
        .order_by(Delivery.next_attempt_at, Delivery.id).limit(batch)
    ).all()
    if rows:
        db.session.execute(
            sa.update(Delivery).where(Delivery.id.in_([row.id for row in rows]), Delivery.status.in_(OPEN_STATUSES))
            .values(next_attempt_at=now + REDRIVE_GRACE)
        )
        db.session.commit()
    return [(row.id, row.channel.value) for row in rows]


def record_settled_fanouts(now: dt.datetime, batch: int = REDRIVE_BATCH) -> int:
    """Record the fan-outs whose chord body never ran (a header task died, or Redis lost the count)."""
    still_open = sa.select(Delivery.id).where(Delivery.fanout_id == Fanout.id, Delivery.status.in_(OPEN_STATUSES))
    ids = db.session.scalars(
        sa.select(Fanout.id)
        .where(Fanout.recorded_at.is_(None), Fanout.created_at <= now - REDRIVE_GRACE, ~still_open.exists())
        .order_by(Fanout.id).limit(batch)
    ).all()
    return sum(1 for fanout_id in ids if record_fanout(fanout_id) is not None)


def redeliver(delivery: Delivery, now: dt.datetime) -> bool:
    """Hand a settled (or waiting-to-retry) delivery back for one more round with a fresh retry
    budget; False when it is pending or an attempt is in progress. The caller commits."""
    result = db.session.execute(
        sa.update(Delivery)
        .where(Delivery.id == delivery.id, Delivery.status != DeliveryStatus.PENDING,
               sa.or_(Delivery.locked_until.is_(None), Delivery.locked_until <= now))
        .values(status=DeliveryStatus.PENDING, max_attempts=Delivery.attempts + MAX_ATTEMPTS,
                next_attempt_at=now, updated_at=now)
        .execution_options(synchronize_session=False)
    )
    if result.rowcount != 1:
        return False
    db.session.execute(sa.update(Fanout).where(Fanout.id == delivery.fanout_id).values(recorded_at=None))
    db.session.expire(delivery)
    return True

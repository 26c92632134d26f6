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

from models import (
    OPEN_STATUSES, DeliveryStatus, NotificationDelivery, NotificationFanout, NotificationInbox, db, utcnow,
)
from tasks.notifications import templates
from tasks.notifications.delivery import MAX_ATTEMPTS, preferences_of

log = logging.getLogger(__name__)
Delivery, Fanout = NotificationDelivery, NotificationFanout
# How long the watchdog leaves an open delivery or an unrecorded fan-out to the normal path (the
# chord, a scheduled retry) before it steps in; also how long it waits after re-driving one.
REDRIVE_GRACE = dt.timedelta(seconds=60)
REDRIVE_BATCH = 200
NO_CHANNEL = "no channel enabled"


@dataclass(frozen=True)
class FanoutPlan:
    """What to dispatch for one recipient: the fan-out and its (delivery id, channel) pairs."""

    fanout_id: int
    deliveries: tuple[tuple[int, str], ...]


def plan_fanout(event: dict, consumer: str) -> list[FanoutPlan] | None:
    """Write the rows an event causes and commit; None when this consumer had the event already."""
    now = utcnow()
    event_id = uuid.UUID(event["event_id"])
    data = event.get("data") or {}
    try:
        db.session.add(NotificationInbox(consumer=consumer, event_id=event_id, event_type=event["type"],
                                         payload=json.dumps(event, separators=(",", ":"))))
        planned: list[tuple[Fanout, list]] = []
        for user, role in templates.recipients(event):
            preference = preferences_of(uuid.UUID(user))
            text = templates.render(event, role, preference.language)
            channels = preference.enabled_channels()
            fanout = Fanout(
                event_id=event_id, event_type=event["type"], recipient_uuid=uuid.UUID(user), role=role,
                language=templates.language_of(preference.language), type=text.type, title=text.title,
                content=text.content, related_id=text.related_id, created_at=now,
                related_data=json.dumps({"event_type": event["type"], **data}, separators=(",", ":")),
                recorded_at=None if channels else now, outcome="" if channels else NO_CHANNEL,
            )
            db.session.add(fanout)
            planned.append((fanout, channels))
        db.session.flush()
        rows = [(fanout, Delivery(fanout_id=fanout.id, event_id=event_id, recipient_uuid=fanout.recipient_uuid,
                                  channel=channel, max_attempts=MAX_ATTEMPTS, next_attempt_at=now))
                for fanout, channels in planned for channel in channels]
        db.session.add_all(delivery for _, delivery in rows)
        db.session.flush()
        by_fanout: dict[int, list[tuple[int, str]]] = {}
        for fanout, delivery in rows:
            by_fanout.setdefault(fanout.id, []).append((delivery.id, delivery.channel.value))
        db.session.commit()
    except IntegrityError:
        db.session.rollback()
        return None
    return [FanoutPlan(fanout_id, tuple(pairs)) for fanout_id, pairs in by_fanout.items()]


def record_fanout(fanout_id: int) -> str | None:
    """Record the outcome once every channel settled; None while one is still open or when it
    was recorded before. The outcome is read from the rows, never from chord arguments."""
    rows = db.session.execute(
        sa.select(Delivery.channel, Delivery.status).where(Delivery.fanout_id == fanout_id).order_by(Delivery.id)
    ).all()
    if any(status in OPEN_STATUSES for _, status in rows):
        return None
    outcome = " ".join(f"{channel.value}:{status.value}" for channel, status in rows) or NO_CHANNEL
    result = db.session.execute(
        sa.update(Fanout).where(Fanout.id == fanout_id, Fanout.recorded_at.is_(None))
        .values(recorded_at=utcnow(), outcome=outcome)
    )
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

"""One delivery attempt: claim the row, send through its channel, write the outcome on the row.

The claim is a conditional UPDATE (open status, no live lease), so of a chord task, a Celery retry,
a watchdog re-drive and a manual redelivery racing on one row, exactly one sends; the others see
the claim fail and return. The row logs every attempt: count, last error, timestamps.

State machine: pending → delivered | failed (transient error, another try scheduled) | dead
(a permanent error, or the transient error of the last try). A dead delivery raises
`DeliveryDead`, so the task fails and is dead-lettered like any task that failed for good.
"""
from __future__ import annotations

import datetime as dt
import logging

import sqlalchemy as sa

from common.settings import Settings
from models import OPEN_STATUSES, Channel, DeliveryStatus, NotificationDelivery, NotificationPreference, db, utcnow
from tasks.errors import PermanentError, TransientError
from tasks.notifications import channels
from tasks.retries import MAX_RETRIES

log = logging.getLogger(__name__)
Delivery = NotificationDelivery
MAX_ATTEMPTS = MAX_RETRIES + 1  # the first try and every retry the task policy allows
# Longer than any one attempt can take (SMTP 10 s, webhook 5 s): a worker that died mid-send
# releases the row when it passes.
LEASE = dt.timedelta(seconds=60)
BACKOFF_CAP = 600.0


class DeliveryDead(PermanentError):
    """The delivery was given up; final (not retried), so the task is dead-lettered."""


def summary(delivery: Delivery | None, skipped: bool = False) -> dict:
    """What a delivery task returns (the chord body gets these, though it reads the rows)."""
    if delivery is None:
        return {"status": "missing"}
    return {"delivery_uuid": str(delivery.delivery_uuid), "channel": delivery.channel.value,
            "status": delivery.status.value, "attempts": delivery.attempts, "skipped": skipped}


def preferences_of(user_uuid) -> NotificationPreference:
    """The user's saved preferences, or the defaults (in-app only, Chinese) when they saved none."""
    query = sa.select(NotificationPreference).where(NotificationPreference.user_uuid == user_uuid)
    return db.session.scalars(query).first() or NotificationPreference.defaults(user_uuid)


def claim(delivery_id: int, now: dt.datetime) -> bool:
    """Take the row for one attempt (counted now, so a crash mid-send still shows the attempt)."""
    result = db.session.execute(
        sa.update(Delivery)
        .where(Delivery.id == delivery_id, Delivery.status.in_(OPEN_STATUSES),
               sa.or_(Delivery.locked_until.is_(None), Delivery.locked_until <= now))
        .values(attempts=Delivery.attempts + 1, last_attempt_at=now, locked_until=now + LEASE, updated_at=now)
        .execution_options(synchronize_session=False)
    )
    db.session.commit()
    return result.rowcount == 1


def _settle(delivery_id: int, status: DeliveryStatus, **values) -> None:
    now = utcnow()
    if status is DeliveryStatus.DELIVERED:
        values["delivered_at"] = now
    db.session.execute(
        sa.update(Delivery).where(Delivery.id == delivery_id)
        .values(status=status, locked_until=None, updated_at=now, **values)
        .execution_options(synchronize_session=False)
    )
    db.session.commit()


def _send(settings: Settings, delivery: Delivery, preference: NotificationPreference) -> None:
    fanout = delivery.fanout
    if delivery.channel is Channel.IN_APP:
        channels.send_in_app(delivery, fanout)
    elif delivery.channel is Channel.EMAIL:
        channels.send_email(settings, delivery, fanout, preference)
    else:
        channels.send_webhook(delivery, fanout, preference)


def deliver(delivery_id: int, settings: Settings) -> dict:
    """Make one attempt; raise TransientError to be retried, DeliveryDead when given up."""
    now = utcnow()
    if not claim(delivery_id, now):  # settled, or another attempt holds it
        return summary(db.session.get(Delivery, delivery_id), skipped=True)
    delivery = db.session.get(Delivery, delivery_id)
    preference = preferences_of(delivery.recipient_uuid)
    if delivery.channel not in preference.enabled_channels():
        _settle(delivery_id, DeliveryStatus.DEAD, last_error="the recipient turned this channel off",
                next_attempt_at=None)
        return summary(db.session.get(Delivery, delivery_id))
    attempt, budget = delivery.attempts, delivery.max_attempts
    try:
        _send(settings, delivery, preference)
    except TransientError as exc:
        if attempt >= budget:
            _settle(delivery_id, DeliveryStatus.DEAD, last_error=str(exc)[:1000], next_attempt_at=None)
            raise DeliveryDead(f"gave up after {attempt} attempts: {exc}") from exc
        # When the watchdog may step in if the scheduled retry (at most this far off) never runs.
        wait = min(BACKOFF_CAP, settings.notification_retry_base * 2 ** (attempt - 1))
        _settle(delivery_id, DeliveryStatus.FAILED, last_error=str(exc)[:1000],
                next_attempt_at=now + dt.timedelta(seconds=wait))
        log.info("delivery %s attempt %d failed, will retry: %s", delivery.delivery_uuid, attempt, exc)
        raise
    except PermanentError as exc:
        _settle(delivery_id, DeliveryStatus.DEAD, last_error=str(exc)[:1000], next_attempt_at=None)
        raise DeliveryDead(str(exc)) from exc
    _settle(delivery_id, DeliveryStatus.DELIVERED, next_attempt_at=None)
    log.info("delivery %s (%s) delivered on attempt %d", delivery.delivery_uuid, delivery.channel, attempt)
    return summary(db.session.get(Delivery, delivery_id))

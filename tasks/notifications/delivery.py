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
from sqlalchemy.orm import lazyload, load_only

from common.settings import Settings
from models import OPEN_STATUSES, Channel, DeliveryStatus, NotificationDelivery, NotificationPreference, db, utcnow
from tasks.errors import PermanentError, TransientError
from tasks.notifications import channels, core
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


# The statements of an attempt, built once with bind parameters: building each statement and its
# cache key on every call was about a fifth of an attempt's CPU (cProfile).
Preference, _delivery = NotificationPreference, core.deliveries.c
CLAIM = (
    sa.update(core.deliveries)
    .where(_delivery.id == sa.bindparam("delivery_id"), _delivery.status.in_(OPEN_STATUSES),
           sa.or_(_delivery.locked_until.is_(None), _delivery.locked_until <= sa.bindparam("now")))
    .values(attempts=_delivery.attempts + 1, last_attempt_at=sa.bindparam("now"),
            locked_until=sa.bindparam("lease_end"), updated_at=sa.bindparam("now"))
)
# The delivery and its recipient's preferences in one query, and only the columns an attempt reads
# (PyMySQL spends ~8 µs on each column of a result); any other attribute still loads when touched.
# The fan-out loads only when touched (email, webhook): the in-app channel copies it in SQL.
CLAIMED = (
    sa.select(Delivery, Preference)
    .outerjoin(Preference, Preference.user_uuid == Delivery.recipient_uuid)
    .where(Delivery.id == sa.bindparam("delivery_id"))
    .options(load_only(Delivery.delivery_uuid, Delivery.fanout_id, Delivery.recipient_uuid, Delivery.channel,
                       Delivery.attempts, Delivery.max_attempts),
             load_only(Preference.in_app_enabled, Preference.email_enabled, Preference.webhook_enabled,
                       Preference.email_address, Preference.webhook_url, Preference.webhook_secret,
                       Preference.webhook_previous_secret, Preference.previous_secret_until),
             lazyload(Delivery.fanout))
)
# The columns an outcome sets differ by status: they are the parameters' keys (`_settle`).
SETTLE = sa.update(core.deliveries).where(_delivery.id == sa.bindparam("delivery_id"))
SUMMARY = (sa.select(_delivery.delivery_uuid, _delivery.channel, _delivery.status, _delivery.attempts)
           .where(_delivery.id == sa.bindparam("delivery_id")))
# A fan-out reads the channels and the language of each recipient.
FANOUT_PREFERENCES = (
    sa.select(Preference).where(Preference.user_uuid.in_(sa.bindparam("users", expanding=True)))
    .options(load_only(Preference.user_uuid, Preference.in_app_enabled, Preference.email_enabled,
                       Preference.webhook_enabled, Preference.language))
)


def summary(delivery_uuid, channel: Channel, status: DeliveryStatus, attempts: int,
            skipped: bool = False) -> dict:
    """What a delivery task returns (the chord body gets these, though it reads the rows)."""
    return {"delivery_uuid": str(delivery_uuid), "channel": channel.value, "status": status.value,
            "attempts": attempts, "skipped": skipped}


def summary_of(delivery_id: int) -> dict:
    """The summary of a delivery another attempt settled or holds, read from its row."""
    row = core.connection().execute(SUMMARY, {"delivery_id": delivery_id}).first()
    return {"status": "missing"} if row is None else summary(*row, skipped=True)


def preferences_of(user_uuid) -> NotificationPreference:
    """The user's saved preferences, or the defaults (in-app only, Chinese) when they saved none."""
    query = sa.select(NotificationPreference).where(NotificationPreference.user_uuid == user_uuid)
    return db.session.scalars(query).first() or NotificationPreference.defaults(user_uuid)


def preferences_for(user_uuids: list) -> dict:
    """What a fan-out needs of several users' preferences (`FANOUT_PREFERENCES`), in one query:
    user uuid → preferences, or the defaults."""
    found = db.session.scalars(FANOUT_PREFERENCES, {"users": user_uuids}) if user_uuids else ()
    saved = {preference.user_uuid: preference for preference in found}
    return {user: saved.get(user) or NotificationPreference.defaults(user) for user in user_uuids}


def claim(delivery_id: int, now: dt.datetime) -> bool:
    """Take the row for one attempt (counted now, so a crash mid-send still shows the attempt)."""
    parameters = {"delivery_id": delivery_id, "now": now, "lease_end": now + LEASE}
    result = core.connection().execute(CLAIM, parameters)
    db.session.commit()
    return result.rowcount == 1


def claimed(delivery_id: int) -> tuple[Delivery, NotificationPreference]:
    """The claimed delivery and its recipient's preferences (`CLAIMED`)."""
    delivery, preference = db.session.execute(CLAIMED, {"delivery_id": delivery_id}).one()
    return delivery, preference or NotificationPreference.defaults(delivery.recipient_uuid)


def _settle(delivery_id: int, status: DeliveryStatus, **values) -> None:
    """Write the attempt's outcome and commit (with the in-app row, when that was the channel)."""
    now = utcnow()
    if status is DeliveryStatus.DELIVERED:
        values["delivered_at"] = now
    core.connection().execute(SETTLE, {"delivery_id": delivery_id, "status": status, "locked_until": None,
                                       "updated_at": now, **values})
    db.session.commit()


def _send(settings: Settings, delivery: Delivery, preference: NotificationPreference) -> None:
    if delivery.channel is Channel.IN_APP:
        channels.send_in_app(delivery)
    elif delivery.channel is Channel.EMAIL:
        channels.send_email(settings, delivery, delivery.fanout, preference)
    else:
        channels.send_webhook(delivery, delivery.fanout, preference)


def deliver(delivery_id: int, settings: Settings) -> dict:
    """Make one attempt; raise TransientError to be retried, DeliveryDead when given up."""
    now = utcnow()
    if not claim(delivery_id, now):  # settled, or another attempt holds it
        return summary_of(delivery_id)
    delivery, preference = claimed(delivery_id)
    # Read before anything commits: a commit (or the rollback of a duplicate in-app row) expires
    # the loaded objects, and reading them again would cost a query each.
    delivery_uuid, channel, attempt, budget = (delivery.delivery_uuid, delivery.channel, delivery.attempts,
                                               delivery.max_attempts)
    if channel not in preference.enabled_channels():
        _settle(delivery_id, DeliveryStatus.DEAD, last_error="the recipient turned this channel off",
                next_attempt_at=None)
        return summary(delivery_uuid, channel, DeliveryStatus.DEAD, attempt)
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
        log.info("delivery %s attempt %d failed, will retry: %s", delivery_uuid, attempt, exc)
        raise
    except PermanentError as exc:
        _settle(delivery_id, DeliveryStatus.DEAD, last_error=str(exc)[:1000], next_attempt_at=None)
        raise DeliveryDead(str(exc)) from exc
    _settle(delivery_id, DeliveryStatus.DELIVERED, next_attempt_at=None)
    log.info("delivery %s (%s) delivered on attempt %d", delivery_uuid, channel, attempt)
    return summary(delivery_uuid, channel, DeliveryStatus.DELIVERED, attempt)

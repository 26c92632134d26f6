"""Reads and small writes of the inbox and the delivery log, with the visibility rule: a user
sees only their own rows (another's answers 404); an admin may read any one by id."""
from __future__ import annotations

import uuid

import sqlalchemy as sa

from api.common.errors import NotFound
from common.tokens import Identity
from models import Channel, DeliveryStatus, Notification, NotificationDelivery, NotificationType, db, utcnow


def _owned(model, column, identity: Identity, value: uuid.UUID, admin_reads: bool):
    query = sa.select(model).where(column == value)
    if not (admin_reads and identity.is_admin):
        query = query.where(model.recipient_uuid == identity.user_uuid)
    return db.session.scalars(query).first()


def notification(identity: Identity, notification_uuid: uuid.UUID, admin_reads: bool = False) -> Notification:
    found = _owned(Notification, Notification.notification_uuid, identity, notification_uuid, admin_reads)
    if found is None:
        raise NotFound("notification_not_found", "No such notification.",
                       {"notification_uuid": str(notification_uuid)})
    return found


def delivery(identity: Identity, delivery_uuid: uuid.UUID) -> NotificationDelivery:
    found = _owned(NotificationDelivery, NotificationDelivery.delivery_uuid, identity, delivery_uuid, False)
    if found is None:
        raise NotFound("delivery_not_found", "No such delivery.", {"delivery_uuid": str(delivery_uuid)})
    return found


def notifications_of(user_uuid: uuid.UUID, kind: NotificationType | None, read: bool | None) -> sa.Select:
    query = sa.select(Notification).where(Notification.recipient_uuid == user_uuid)
    if kind is not None:
        query = query.where(Notification.type == kind)
    if read is not None:
        query = query.where(Notification.read == read)
    return query.order_by(Notification.created_at.desc(), Notification.id.desc())


def unread_count(user_uuid: uuid.UUID) -> int:
    """Answered from the (recipient_uuid, is_read) index alone."""
    return db.session.scalar(sa.select(sa.func.count()).select_from(Notification).where(
        Notification.recipient_uuid == user_uuid, Notification.read == sa.false()))


def mark_read(found: Notification) -> None:
    """Idempotent: the first call sets `read_at`, later ones leave it as it was."""
    db.session.execute(sa.update(Notification).where(Notification.id == found.id, Notification.read == sa.false())
                       .values(read=True, read_at=utcnow()).execution_options(synchronize_session=False))
    db.session.expire(found)


def mark_all_read(user_uuid: uuid.UUID) -> int:
    return db.session.execute(
        sa.update(Notification).where(Notification.recipient_uuid == user_uuid, Notification.read == sa.false())
        .values(read=True, read_at=utcnow())
    ).rowcount


def deliveries_of(user_uuid: uuid.UUID, channel: Channel | None, status: DeliveryStatus | None) -> sa.Select:
    query = sa.select(NotificationDelivery).where(NotificationDelivery.recipient_uuid == user_uuid)
    if channel is not None:
        query = query.where(NotificationDelivery.channel == channel)
    if status is not None:
        query = query.where(NotificationDelivery.status == status)
    return query.order_by(NotificationDelivery.created_at.desc(), NotificationDelivery.id.desc())

"""Fan-out bookkeeping: one rendered message per (event, recipient) and one delivery row per channel.

The database, not the chord, is the source of truth (reference §2.3): every delivery attempt is
written on its row, so a chord whose body never fires, or a message lost with a worker, is found
again by the beat watchdog from these rows alone.
"""
from __future__ import annotations

import datetime as dt
import enum
import json
import uuid

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column, relationship

from models.base import BigId, TimestampMixin, db, utcnow
from models.notification import NotificationType


class Channel(enum.StrEnum):
    IN_APP = "in_app"
    EMAIL = "email"
    WEBHOOK = "webhook"


class DeliveryStatus(enum.StrEnum):
    PENDING = "pending"  # not tried yet (or handed back by a manual redelivery)
    DELIVERED = "delivered"
    FAILED = "failed"  # the last try failed transiently; another one is scheduled
    DEAD = "dead"  # given up: a permanent failure, or the last try failed


# Still to be tried: what the watchdog looks at and a manual redelivery may not interrupt.
OPEN_STATUSES = (DeliveryStatus.PENDING, DeliveryStatus.FAILED)
# Task messages carry these tables' ids, so an id must never be handed out twice: SQLite reuses the
# largest rowid after a delete unless the table is AUTOINCREMENT (InnoDB never reuses them).
NEVER_REUSE_IDS = {"sqlite_autoincrement": True}


class NotificationFanout(db.Model):
    """The message one event means for one recipient, rendered once in their language."""

    __tablename__ = "notification_fanouts"
    __bind_key__ = "notifications"
    __table_args__ = (
        sa.UniqueConstraint("event_id", "recipient_uuid", name="uq_notification_fanouts_event_recipient"),
        sa.Index("ix_notification_fanouts_unrecorded", "recorded_at", "created_at"),
        NEVER_REUSE_IDS,
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    event_id: Mapped[uuid.UUID]
    event_type: Mapped[str] = mapped_column(sa.String(64))
    recipient_uuid: Mapped[uuid.UUID]
    role: Mapped[str] = mapped_column(sa.String(16))
    language: Mapped[str] = mapped_column(sa.String(8))
    type: Mapped[NotificationType]
    title: Mapped[str] = mapped_column(sa.String(200))
    content: Mapped[str] = mapped_column(sa.Text)
    related_id: Mapped[str | None] = mapped_column(sa.String(64))
    related_data: Mapped[str] = mapped_column(sa.Text, default="{}")
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    # Set once every channel settled (by the chord body, or by the watchdog when the body never ran).
    recorded_at: Mapped[dt.datetime | None]
    outcome: Mapped[str] = mapped_column(sa.String(255), default="")

    @property
    def related(self) -> dict:
        return json.loads(self.related_data or "{}")


class NotificationDelivery(TimestampMixin, db.Model):
    """One channel of one fan-out: UNIQUE (event, recipient, channel), so nothing is sent twice
    because a message was redelivered; every attempt is logged here."""

    __tablename__ = "notification_deliveries"
    __bind_key__ = "notifications"
    __table_args__ = (
        sa.UniqueConstraint("event_id", "recipient_uuid", "channel", name="uq_notification_deliveries_once"),
        sa.Index("ix_notification_deliveries_recipient_created", "recipient_uuid", "created_at"),
        sa.Index("ix_notification_deliveries_due", "status", "next_attempt_at"),
        NEVER_REUSE_IDS,
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    delivery_uuid: Mapped[uuid.UUID] = mapped_column(unique=True, default=uuid.uuid4)
    fanout_id: Mapped[int] = mapped_column(
        sa.ForeignKey("notification_fanouts.id", ondelete="CASCADE"), index=True)
    event_id: Mapped[uuid.UUID]
    recipient_uuid: Mapped[uuid.UUID]
    channel: Mapped[Channel]
    status: Mapped[DeliveryStatus] = mapped_column(default=DeliveryStatus.PENDING)
    attempts: Mapped[int] = mapped_column(default=0)
    # The try after which a transient failure is final; a manual redelivery grants a fresh budget.
    max_attempts: Mapped[int]
    last_error: Mapped[str | None] = mapped_column(sa.String(1000))
    # When the watchdog may (re)drive it, if nothing else has by then; NULL once settled.
    next_attempt_at: Mapped[dt.datetime | None]
    last_attempt_at: Mapped[dt.datetime | None]
    delivered_at: Mapped[dt.datetime | None]
    # A claimed attempt in progress: nobody else tries until it has passed.
    locked_until: Mapped[dt.datetime | None]

    fanout = relationship("NotificationFanout", lazy="selectin")

"""The in-app inbox: the notifications a user reads, marks read and deletes (DESIGN.md §7).

A row is written by the `in_app` channel of a fan-out, at most once per fan-out (`fanout_id` is
unique), so a redelivered event or a retried delivery never shows the same notification twice.
"""
from __future__ import annotations

import datetime as dt
import enum
import json
import uuid

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from models.base import BigId, db, utcnow


class NotificationType(enum.StrEnum):
    TRANSACTION = "transaction"
    SYSTEM = "system"
    PROMOTION = "promotion"


class Notification(db.Model):
    __tablename__ = "notifications"
    __bind_key__ = "notifications"
    __table_args__ = (
        # The unread count and the `read` filter are an index range, never a scan of a user's rows.
        sa.Index("ix_notifications_recipient_read", "recipient_uuid", "is_read"),
        # The inbox, newest first.
        sa.Index("ix_notifications_recipient_created", "recipient_uuid", "created_at"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    notification_uuid: Mapped[uuid.UUID] = mapped_column(unique=True, default=uuid.uuid4)
    recipient_uuid: Mapped[uuid.UUID]
    # The fan-out that wrote it; NULL for notifications not born from an event.
    fanout_id: Mapped[int | None] = mapped_column(
        sa.ForeignKey("notification_fanouts.id", ondelete="CASCADE"), unique=True)
    type: Mapped[NotificationType]
    title: Mapped[str] = mapped_column(sa.String(200))
    content: Mapped[str] = mapped_column(sa.Text)
    # `READ` is a reserved word in MySQL: the column is `is_read`, the attribute (and API field) `read`.
    read: Mapped[bool] = mapped_column("is_read", default=False)
    read_at: Mapped[dt.datetime | None]
    related_id: Mapped[str | None] = mapped_column(sa.String(64))
    # JSON text: portable across SQLite and MariaDB (whose JSON is LONGTEXT that migrations mis-compare).
    related_data: Mapped[str] = mapped_column(sa.Text, default="{}")
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)

    @property
    def related(self) -> dict:
        return json.loads(self.related_data or "{}")

"""Consumer-side dedupe: one row per (consumer, event id), so a redelivered event is handled once."""
from __future__ import annotations

import datetime as dt
import uuid

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, declared_attr, mapped_column

from models.base import BigId, db, utcnow


class InboxMixin:
    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    consumer: Mapped[str] = mapped_column(sa.String(64))
    event_id: Mapped[uuid.UUID]
    event_type: Mapped[str] = mapped_column(sa.String(64))
    payload: Mapped[str] = mapped_column(sa.Text)
    received_at: Mapped[dt.datetime] = mapped_column(default=utcnow)

    @declared_attr.directive
    def __table_args__(cls):
        return (sa.UniqueConstraint("consumer", "event_id", name=f"uq_{cls.__tablename__}_consumer_event"),)


class OrderInbox(InboxMixin, db.Model):
    """The orders bind's inbox. No production code writes it: the order service consumes none of
    its own events (`tasks/events.py`; the no-op `orders.record_event` was removed), and
    `orders.on_refund_failed` is guarded by the order's state. The table stays for its migration
    (0002, frozen history) and for a future orders consumer; the worker-kill test uses it as its
    dedupe table (`tests/support/effect_tasks.py`)."""

    __tablename__ = "order_inbox"
    __bind_key__ = "orders"

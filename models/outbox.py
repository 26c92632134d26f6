"""Transactional outbox: the events a state change causes, committed with the change itself.

Each service has its own table in its own bind; a relay publishes unpublished rows in id order.
"""
from __future__ import annotations

import datetime as dt
import json
import uuid

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, declared_attr, mapped_column

from models.base import BigId, db, utcnow


class OutboxMixin:
    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    event_id: Mapped[uuid.UUID] = mapped_column(unique=True, default=uuid.uuid4)
    event_type: Mapped[str] = mapped_column(sa.String(64))
    aggregate_uuid: Mapped[uuid.UUID] = mapped_column(index=True)
    payload: Mapped[str] = mapped_column(sa.Text)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    published_at: Mapped[dt.datetime | None]
    attempts: Mapped[int] = mapped_column(default=0)

    @declared_attr.directive
    def __table_args__(cls):
        return (sa.Index(f"ix_{cls.__tablename__}_unpublished", "published_at", "id"),)

    @classmethod
    def new(cls, event_type: str, aggregate_uuid: uuid.UUID, data: dict):
        event_id = uuid.uuid4()
        now = utcnow()
        body = {"event_id": str(event_id), "type": event_type, "occurred_at": now.isoformat(), "data": data}
        return cls(
            event_id=event_id, event_type=event_type, aggregate_uuid=aggregate_uuid,
            payload=json.dumps(body, separators=(",", ":")), created_at=now,
        )


class OrderOutbox(OutboxMixin, db.Model):
    __tablename__ = "order_outbox"
    __bind_key__ = "orders"

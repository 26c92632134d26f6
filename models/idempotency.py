"""Stored first responses of POSTs sent with an `Idempotency-Key` (DESIGN.md §6)."""
from __future__ import annotations

import datetime as dt
import uuid

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, declared_attr, mapped_column

from models.base import BigId, db, utcnow


class IdempotencyMixin:
    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    user_uuid: Mapped[uuid.UUID]
    route: Mapped[str] = mapped_column(sa.String(128))
    idem_key: Mapped[str] = mapped_column(sa.String(255))
    request_hash: Mapped[str] = mapped_column(sa.String(64))
    # None while the first request is in flight, then the stored response.
    response_status: Mapped[int | None]
    response_body: Mapped[str | None] = mapped_column(sa.Text)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[dt.datetime] = mapped_column(index=True)

    @declared_attr.directive
    def __table_args__(cls):
        return (sa.UniqueConstraint("user_uuid", "route", "idem_key", name=f"uq_{cls.__tablename__}_scope"),)


class OrderIdempotencyKey(IdempotencyMixin, db.Model):
    __tablename__ = "order_idempotency_keys"
    __bind_key__ = "orders"

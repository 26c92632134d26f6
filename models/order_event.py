"""The order audit trail: one row per state change, written in the transaction that made it."""
from __future__ import annotations

import datetime as dt

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from models.base import BigId, db, utcnow

SYSTEM_ACTOR = "system"


class OrderEvent(db.Model):
    __tablename__ = "order_events"
    __bind_key__ = "orders"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    order_id: Mapped[int] = mapped_column(sa.ForeignKey("orders.id", ondelete="CASCADE"), index=True)
    event_type: Mapped[str] = mapped_column(sa.String(32))
    actor: Mapped[str] = mapped_column(sa.String(64))
    from_status: Mapped[str | None] = mapped_column(sa.String(32))
    to_status: Mapped[str] = mapped_column(sa.String(32))
    reason: Mapped[str] = mapped_column(sa.String(255), default="")
    request_id: Mapped[str] = mapped_column(sa.String(128), default="")
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


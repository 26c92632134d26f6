"""Tasks that failed for good (a permanent error, or retries exhausted), kept for operators."""
from __future__ import annotations

import datetime as dt

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from models.base import BigId, db, utcnow


class DeadLetterMixin:
    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    task_id: Mapped[str] = mapped_column(sa.String(155), unique=True)
    task_name: Mapped[str] = mapped_column(sa.String(128), index=True)
    args: Mapped[str] = mapped_column(sa.Text)
    error: Mapped[str] = mapped_column(sa.Text)
    retries: Mapped[int] = mapped_column(default=0)
    failed_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class OrderDeadLetter(DeadLetterMixin, db.Model):
    __tablename__ = "order_dead_letters"
    __bind_key__ = "orders"

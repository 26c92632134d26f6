"""The payments bind's copies of the shared plumbing tables (outbox, idempotency keys, dead letters)
and the provider-callback log that makes a replayed callback harmless."""
from __future__ import annotations

import datetime as dt

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from models.base import BigId, db, utcnow
from models.dead_letter import DeadLetterMixin
from models.idempotency import IdempotencyMixin
from models.outbox import OutboxMixin


class PaymentOutbox(OutboxMixin, db.Model):
    __tablename__ = "payment_outbox"
    __bind_key__ = "payments"


class PaymentIdempotencyKey(IdempotencyMixin, db.Model):
    __tablename__ = "payment_idempotency_keys"
    __bind_key__ = "payments"


class PaymentDeadLetter(DeadLetterMixin, db.Model):
    __tablename__ = "payment_dead_letters"
    __bind_key__ = "payments"


class RiskDeadLetter(DeadLetterMixin, db.Model):
    __tablename__ = "risk_dead_letters"
    __bind_key__ = "payments"


class PaymentCallback(db.Model):
    """One row per provider event: the UNIQUE (provider, event_id) insert *is* the dedupe, so a
    replayed or re-sent callback finds its row and changes nothing."""

    __tablename__ = "payment_callbacks"
    __bind_key__ = "payments"
    __table_args__ = (sa.UniqueConstraint("provider", "event_id", name="uq_payment_callbacks_provider_event"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    provider: Mapped[str] = mapped_column(sa.String(32))
    event_id: Mapped[str] = mapped_column(sa.String(128))
    provider_reference: Mapped[str] = mapped_column(sa.String(128), index=True)
    outcome: Mapped[str] = mapped_column(sa.String(32))
    payload: Mapped[str] = mapped_column(sa.Text)
    received_at: Mapped[dt.datetime] = mapped_column(default=utcnow)

"""Refunds of a captured payment (DESIGN.md §7, §8).

The refunds of a payment never add up to more than it captured, and the database enforces it: the
payment's `refund_reserved` holds the sum of its refunds that are pending, processing or succeeded,
and is only ever moved by one conditional UPDATE (`reserve`), which refuses to pass `amount`. That
statement locks the payment row on MariaDB and runs alone on SQLite, so racing refunds serialise on
it and only those that fit get a row. A refund that fails gives its amount back (`release`), guarded
by the refund's own conditional move to `failed`, so it is given back once.
"""
from __future__ import annotations

import datetime as dt
import enum
import logging
import uuid
from decimal import Decimal

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column, relationship

from models.base import BigId, Money, TimestampMixin, db, utcnow
from models.payment import Payment

log = logging.getLogger(__name__)

class RefundStatus(enum.StrEnum):
    PENDING = "pending"
    PROCESSING = "processing"
    SUCCEEDED = "succeeded"
    FAILED = "failed"


SOURCES: dict[RefundStatus, frozenset[RefundStatus]] = {
    RefundStatus.PROCESSING: frozenset({RefundStatus.PENDING}),
    RefundStatus.SUCCEEDED: frozenset({RefundStatus.PROCESSING}),
    RefundStatus.FAILED: frozenset({RefundStatus.PENDING, RefundStatus.PROCESSING}),
}
OPEN = frozenset({RefundStatus.PENDING, RefundStatus.PROCESSING})


def exact_sum(column, amount: Decimal):
    """`column + amount` rounded to cents in SQL: exact on MariaDB (DECIMAL), and on SQLite (which
    computes NUMERIC columns as REAL) it turns 0.1 + 0.2 back into the 0.30 stored next to it."""
    return sa.func.round(column + amount, 2, type_=Money)


class Refund(TimestampMixin, db.Model):
    __tablename__ = "refunds"
    __bind_key__ = "payments"
    __table_args__ = (
        sa.Index("ix_refunds_payment_created", "payment_id", "created_at"),
        sa.Index("ix_refunds_status_updated", "status", "updated_at"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    refund_uuid: Mapped[uuid.UUID] = mapped_column(unique=True, default=uuid.uuid4)
    payment_id: Mapped[int] = mapped_column(BigId, sa.ForeignKey("payments.id", ondelete="CASCADE"))
    amount: Mapped[Decimal]
    currency: Mapped[str] = mapped_column(sa.String(3), default="CNY")
    reason: Mapped[str] = mapped_column(sa.String(255), default="")
    status: Mapped[RefundStatus] = mapped_column(default=RefundStatus.PENDING)
    # Who asked (the seller or an admin; the buyer, by cancelling the order); NULL when the system
    # refunds on its own.
    requested_by: Mapped[uuid.UUID | None]
    # Makes a system-initiated refund happen once: `order-cancel:<order uuid>:<cancel request id>` (once
    # per cancel request; `order-cancel:<order uuid>` for requests older than cancel ids),
    # `refund-due:<payment uuid>`.
    request_key: Mapped[str | None] = mapped_column(sa.String(128), unique=True)
    # What the provider answered (`succeeded`, `processing`; `failed` ends the refund at once).
    provider_outcome: Mapped[str | None] = mapped_column(sa.String(32))
    provider_reference: Mapped[str | None] = mapped_column(sa.String(128))
    failure_reason: Mapped[str | None] = mapped_column(sa.String(255))
    refunded_at: Mapped[dt.datetime | None]
    # When the refund's order side finished (`payments.settle_refund_order`, after `orders.on_refunded`).
    # A succeeded refund without it lost the tail of its chain (a broker that forgot the message):
    # beat runs that tail again.
    order_settled_at: Mapped[dt.datetime | None]

    payment = relationship(Payment, lazy="joined", innerjoin=True)

    @classmethod
    def move(cls, refund_id: int, target: RefundStatus, *conditions, **values) -> bool:
        """Conditional UPDATE to `target` from a status allowed to reach it; exactly one of any
        number of racing moves matches the row, the rest get False and change nothing."""
        result = db.session.execute(
            sa.update(cls).where(cls.id == refund_id, cls.status.in_(SOURCES[target]), *conditions)
            .values(status=target, updated_at=utcnow(), **values)
            .execution_options(synchronize_session=False)
        )
        return result.rowcount == 1


def reserve(payment_id: int, amount: Decimal, refundable) -> bool:
    """Add `amount` to the payment's reserved refunds, only while `refundable` (a condition on the
    payment's row) holds and the total stays within what was captured. One statement: the row lock
    it takes is what serialises racing refunds."""
    total = exact_sum(Payment.refund_reserved, amount)
    result = db.session.execute(
        sa.update(Payment)
        .where(Payment.id == payment_id, refundable, total <= Payment.amount)
        .values(refund_reserved=total, updated_at=utcnow())
        .execution_options(synchronize_session=False)
    )
    return result.rowcount == 1


def release(payment_id: int, amount: Decimal) -> bool:
    """Give a failed refund's amount back; callers guard it with the refund's move to `failed`.
    The guard below can only fail if the books are already wrong (less reserved than this refund
    holds): nothing is changed then, and it is logged as the error it is."""
    released = db.session.execute(
        sa.update(Payment)
        .where(Payment.id == payment_id, Payment.refund_reserved >= amount)
        .values(refund_reserved=exact_sum(Payment.refund_reserved, -amount), updated_at=utcnow())
        .execution_options(synchronize_session=False)
    ).rowcount == 1
    if not released:
        log.error("payment %s: cannot release %s of a failed refund: less than that is reserved (or no such "
                  "payment); refund_reserved left unchanged, check its refunds", payment_id, amount)
    return released


def add_refunded(payment_id: int, amount: Decimal) -> None:
    """Count a settled refund; callers guard it with the refund's move to `succeeded`."""
    db.session.execute(
        sa.update(Payment).where(Payment.id == payment_id)
        .values(refunded_amount=exact_sum(Payment.refunded_amount, amount), updated_at=utcnow())
        .execution_options(synchronize_session=False)
    )

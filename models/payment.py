"""The payment aggregate and its state machine (DESIGN.md §7 "Payments").

At most one payment per order may be in flight or succeed, and the database enforces it, not the
code: `active_order_uuid` is UNIQUE, holds the order's uuid while the payment is pending, in review,
processing or succeeded, and becomes NULL once it failed, was cancelled or expired. MariaDB has no
partial indexes, but UNIQUE ignores NULLs on every backend, so this is the portable equivalent of
`UNIQUE (order_uuid) WHERE status IN (...)`.
"""
from __future__ import annotations

import datetime as dt
import enum
import json
import uuid
from decimal import Decimal

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from models.base import BigId, TimestampMixin, db, utcnow


class PaymentStatus(enum.StrEnum):
    PENDING = "pending"
    REVIEW = "review"
    PROCESSING = "processing"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"
    EXPIRED = "expired"
    PARTIALLY_REFUNDED = "partially_refunded"
    REFUNDED = "refunded"


# Where each status may be reached from; anything else is refused by the conditional UPDATE.
SOURCES: dict[PaymentStatus, frozenset[PaymentStatus]] = {
    PaymentStatus.REVIEW: frozenset({PaymentStatus.PENDING}),
    PaymentStatus.PROCESSING: frozenset({PaymentStatus.PENDING, PaymentStatus.REVIEW}),
    PaymentStatus.SUCCEEDED: frozenset({PaymentStatus.PROCESSING}),
    PaymentStatus.FAILED: frozenset({PaymentStatus.PENDING, PaymentStatus.REVIEW, PaymentStatus.PROCESSING}),
    PaymentStatus.CANCELLED: frozenset({PaymentStatus.PENDING, PaymentStatus.REVIEW, PaymentStatus.PROCESSING}),
    PaymentStatus.EXPIRED: frozenset({PaymentStatus.PENDING, PaymentStatus.REVIEW, PaymentStatus.PROCESSING}),
    PaymentStatus.PARTIALLY_REFUNDED: frozenset({PaymentStatus.SUCCEEDED}),
    PaymentStatus.REFUNDED: frozenset({PaymentStatus.SUCCEEDED, PaymentStatus.PARTIALLY_REFUNDED}),
}
# Statuses that release the order for another payment attempt.
RELEASING = frozenset({PaymentStatus.FAILED, PaymentStatus.CANCELLED, PaymentStatus.EXPIRED})
# Statuses a refund may be asked of (models/refund.py).
REFUNDABLE = frozenset({PaymentStatus.SUCCEEDED, PaymentStatus.PARTIALLY_REFUNDED})


class Payment(TimestampMixin, db.Model):
    __tablename__ = "payments"
    __bind_key__ = "payments"
    __table_args__ = (
        sa.Index("ix_payments_user_created", "user_uuid", "created_at"),
        sa.Index("ix_payments_status_expires", "status", "expires_at"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    payment_uuid: Mapped[uuid.UUID] = mapped_column(unique=True, default=uuid.uuid4)
    order_uuid: Mapped[uuid.UUID] = mapped_column(index=True)
    active_order_uuid: Mapped[uuid.UUID | None] = mapped_column(unique=True)
    # Snapshot of the order as fetched from the order service when the payment was created.
    user_uuid: Mapped[uuid.UUID]
    seller_uuid: Mapped[uuid.UUID]
    amount: Mapped[Decimal]
    currency: Mapped[str] = mapped_column(sa.String(3), default="CNY")
    shipping_address: Mapped[str] = mapped_column(sa.String(500), default="")
    payment_method: Mapped[str] = mapped_column(sa.String(32))
    status: Mapped[PaymentStatus] = mapped_column(default=PaymentStatus.PENDING)
    provider_reference: Mapped[str | None] = mapped_column(sa.String(128), unique=True)
    payment_data_json: Mapped[str] = mapped_column("payment_data", sa.Text, default="{}")
    failure_reason: Mapped[str | None] = mapped_column(sa.String(255))
    # The provider took money the order could not keep (it was cancelled meanwhile): refund it.
    refund_due: Mapped[bool] = mapped_column(default=False)
    # Sum of the refunds pending, processing or succeeded (models/refund.py keeps it <= amount),
    # and of those that succeeded.
    refund_reserved: Mapped[Decimal] = mapped_column(default=Decimal("0.00"))
    refunded_amount: Mapped[Decimal] = mapped_column(default=Decimal("0.00"))
    expires_at: Mapped[dt.datetime]
    paid_at: Mapped[dt.datetime | None]
    # When the capture's order side finished (`payments.settle_capture`: the order paid, or the money
    # flagged due back). A captured payment without it lost the tail of its chain (a broker that
    # forgot the message): beat runs that tail again.
    capture_settled_at: Mapped[dt.datetime | None]

    @property
    def payment_data(self) -> dict:
        return json.loads(self.payment_data_json or "{}")

    @property
    def refundable_amount(self) -> Decimal:
        """What refunds may still take: the amount less the refunds pending, processing or succeeded."""
        return self.amount - self.refund_reserved if self.status in REFUNDABLE else Decimal("0.00")

    @classmethod
    def move(cls, payment_id: int, target: PaymentStatus, sources: frozenset[PaymentStatus] | None = None,
             **values) -> bool:
        """Conditional UPDATE to `target`, only from a status allowed to reach it (narrowed by `sources`).

        Of any number of racing moves exactly one matches the row; the rest get False and change
        nothing. Releasing statuses clear `active_order_uuid`, freeing the order for a new attempt.
        """
        if target in RELEASING:
            values["active_order_uuid"] = None
        if "payment_data" in values:
            values["payment_data_json"] = json.dumps(values.pop("payment_data"), sort_keys=True)
        result = db.session.execute(
            sa.update(cls)
            .where(cls.id == payment_id, cls.status.in_(SOURCES[target] & (sources or SOURCES[target])))
            .values(status=target, updated_at=utcnow(), **values)
            .execution_options(synchronize_session=False)
        )
        return result.rowcount == 1

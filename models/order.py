"""The order aggregate root and its state machine (DESIGN.md §7)."""
from __future__ import annotations

import datetime as dt
import enum
import uuid
from decimal import Decimal

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column, relationship
from sqlalchemy.orm.attributes import set_committed_value

from models.base import BigId, TimestampMixin, db, utcnow


class OrderStatus(enum.StrEnum):
    PENDING_PAYMENT = "pending_payment"
    PAID = "paid"
    COMPLETED = "completed"
    CANCELLED = "cancelled"


# Every legal move; anything else is an IllegalTransition.
TRANSITIONS: dict[OrderStatus, frozenset[OrderStatus]] = {
    OrderStatus.PENDING_PAYMENT: frozenset({OrderStatus.PAID, OrderStatus.CANCELLED}),
    OrderStatus.PAID: frozenset({OrderStatus.COMPLETED, OrderStatus.CANCELLED}),
    OrderStatus.COMPLETED: frozenset(),
    OrderStatus.CANCELLED: frozenset(),
}


class IllegalTransition(Exception):
    def __init__(self, current: OrderStatus, target: OrderStatus):
        super().__init__(f"an order in status {current} cannot become {target}")
        self.current = current
        self.target = target


class Order(TimestampMixin, db.Model):
    __tablename__ = "orders"
    __bind_key__ = "orders"
    __table_args__ = (
        sa.Index("ix_orders_buyer_created", "buyer_uuid", "created_at"),
        sa.Index("ix_orders_seller_created", "seller_uuid", "created_at"),
        sa.Index("ix_orders_status_created", "status", "created_at"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    order_uuid: Mapped[uuid.UUID] = mapped_column(unique=True, default=uuid.uuid4)
    buyer_uuid: Mapped[uuid.UUID]
    seller_uuid: Mapped[uuid.UUID]
    total_amount: Mapped[Decimal]
    currency: Mapped[str] = mapped_column(sa.String(3), default="CNY")
    status: Mapped[OrderStatus] = mapped_column(default=OrderStatus.PENDING_PAYMENT)
    payment_method: Mapped[str | None] = mapped_column(sa.String(32))
    payment_time: Mapped[dt.datetime | None]
    remark: Mapped[str] = mapped_column(sa.String(500), default="")
    cancel_reason: Mapped[str | None] = mapped_column(sa.String(255))
    shipping_name: Mapped[str] = mapped_column(sa.String(100))
    shipping_phone: Mapped[str] = mapped_column(sa.String(32))
    shipping_address: Mapped[str] = mapped_column(sa.String(500))
    shipping_postal_code: Mapped[str] = mapped_column(sa.String(16), default="")
    version: Mapped[int] = mapped_column(default=1)

    items = relationship("OrderItem", back_populates="order", order_by="OrderItem.id", lazy="selectin")

    def transition(self, target: OrderStatus, *conditions, **values) -> None:
        """Move to `target` with a conditional UPDATE guarded by the status read (and `conditions`,
        e.g. the version read, so a change that keeps the status still wins over this one).

        The UPDATE matches only while the row still has the status this instance saw, so of two
        racing requests exactly one wins; the loser gets IllegalTransition with the fresh status.
        `values` are plain column values (not SQL expressions): the instance keeps them as written.
        """
        current = self.status
        if target not in TRANSITIONS[current]:
            raise IllegalTransition(current, target)
        written = {"status": target, "updated_at": utcnow(), **values}
        result = db.session.execute(
            sa.update(Order)
            .where(Order.id == self.id, Order.status == current, *conditions)
            .values(version=Order.version + 1, **written)
            .execution_options(synchronize_session=False)
        )
        if result.rowcount != 1:
            db.session.expire(self)
            raise IllegalTransition(self.status, target)
        # The row now holds what this UPDATE wrote (it holds the row lock until the commit): keep
        # those values on the instance as loaded instead of reading the row back. Only the version,
        # computed by the database, is expired; no other column changes while the status stays.
        for key, value in written.items():
            set_committed_value(self, key, value)
        db.session.expire(self, ["version"])

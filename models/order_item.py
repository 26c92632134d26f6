"""Order lines: a snapshot of the product at the time of ordering."""
from __future__ import annotations

import uuid
from decimal import Decimal

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column, relationship

from models.base import BigId, db


class OrderItem(db.Model):
    __tablename__ = "order_items"
    __bind_key__ = "orders"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    order_id: Mapped[int] = mapped_column(sa.ForeignKey("orders.id", ondelete="CASCADE"), index=True)
    product_uuid: Mapped[uuid.UUID]
    product_name: Mapped[str] = mapped_column(sa.String(200))
    product_price: Mapped[Decimal]
    product_image: Mapped[str] = mapped_column(sa.String(500), default="")
    quantity: Mapped[int]

    order = relationship("Order", back_populates="items")

    @property
    def subtotal(self) -> Decimal:
        return self.product_price * self.quantity

"""Request bodies and rows the tests build; valid by default, overridden per test."""
from __future__ import annotations

import uuid

import sqlalchemy as sa


def item(**overrides) -> dict:
    body = {"product_uuid": str(uuid.uuid4()), "product_name": "Tea set", "product_price": "99.50", "quantity": 2}
    body.update(overrides)
    return body


def order_body(seller_uuid, items=None, **overrides) -> dict:
    body = {
        "seller_uuid": str(seller_uuid),
        "items": items if items is not None else [item(), item(product_name="Cups", product_price="10.00", quantity=3)],
        "shipping_name": "Li Lei",
        "shipping_phone": "+86 138 0000 0000",
        "shipping_address": "1 Renmin Road, Hangzhou",
    }
    body.update(overrides)
    return body


def order_row(**fields):
    """A transient `Order` (pending payment, no items) for tests that write rows themselves."""
    from decimal import Decimal

    from models import Order, OrderStatus

    values = {"order_uuid": uuid.uuid4(), "buyer_uuid": uuid.uuid4(), "seller_uuid": uuid.uuid4(),
              "total_amount": Decimal("12345.67"), "status": OrderStatus.PENDING_PAYMENT, "shipping_name": "Li Lei",
              "shipping_phone": "+86 138", "shipping_address": "1 Renmin Road", **fields}
    return Order(**values)


def force_status(stack, order_uuid, status: str) -> None:
    """Put an order in a state no endpoint reaches yet (e.g. `paid` before payments exist)."""
    from models import Order, OrderStatus, db

    with stack.orders_app.app_context():
        db.session.execute(sa.update(Order).where(Order.order_uuid == uuid.UUID(str(order_uuid)))
                           .values(status=OrderStatus(status)))
        db.session.commit()

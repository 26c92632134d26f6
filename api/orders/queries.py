"""Reads of the order API, with the visibility rule: buyer or seller sees an order, admin all."""
from __future__ import annotations

import uuid
from decimal import Decimal

import sqlalchemy as sa

from api.common.errors import NotFound
from common.tokens import Identity
from models import Order, OrderEvent, OrderStatus, db

SETTLED = (OrderStatus.PAID, OrderStatus.COMPLETED)


def visible_order(identity: Identity, order_uuid: uuid.UUID, for_update: bool = False) -> Order:
    query = sa.select(Order).where(Order.order_uuid == order_uuid)
    if not identity.is_admin:
        query = query.where(sa.or_(Order.buyer_uuid == identity.user_uuid, Order.seller_uuid == identity.user_uuid))
    order = db.session.scalars(query).first()
    if order is None:
        raise NotFound("order_not_found", "No such order.", {"order_uuid": str(order_uuid)})
    return order


def orders_of(column, user_uuid: uuid.UUID, status: OrderStatus | None) -> sa.Select:
    query = sa.select(Order).where(column == user_uuid)
    if status is not None:
        query = query.where(Order.status == status)
    return query.order_by(Order.created_at.desc(), Order.id.desc())


def events_of(order: Order) -> sa.Select:
    return sa.select(OrderEvent).where(OrderEvent.order_id == order.id).order_by(OrderEvent.id)


def _side(column, user_uuid: uuid.UUID) -> dict:
    rows = db.session.execute(
        sa.select(Order.status, sa.func.count(), sa.func.coalesce(sa.func.sum(Order.total_amount), 0))
        .where(column == user_uuid).group_by(Order.status)
    ).all()
    by_status = {status.value: 0 for status in OrderStatus}
    total = Decimal("0")
    for status, count, amount in rows:
        by_status[OrderStatus(status).value] = count
        if status in SETTLED:
            total += Decimal(amount)
    return {"count": sum(by_status.values()), "by_status": by_status, "total_amount": total}


def stats_of(user_uuid: uuid.UUID) -> dict:
    return {"as_buyer": _side(Order.buyer_uuid, user_uuid), "as_seller": _side(Order.seller_uuid, user_uuid)}

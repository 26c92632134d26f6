"""Order endpoints (DESIGN.md §7): thin views over queries and `tasks.orders.actions`."""
from __future__ import annotations

import uuid

from flask import Blueprint, g

from api.common.auth import current_identity
from api.common.body import load_body, load_query
from api.common.errors import Conflict, Forbidden, ValidationFailed
from api.common.idempotency import idempotent
from api.common.openapi import doc, page_of
from api.common.pagination import PageQuerySchema, paginate
from api.orders import queries
from api.orders.schemas import (
    EMPTY, ORDER, ORDER_CANCEL, ORDER_CREATE, ORDER_EVENTS, ORDER_LIST_QUERY, ORDER_STATS, ORDERS, PAGE_QUERY,
    EmptySchema, OrderCancelSchema, OrderCreateSchema, OrderEventSchema, OrderListQuerySchema, OrderSchema,
    OrderStatsSchema,
)
from models import IllegalTransition, Order, OrderIdempotencyKey, db
from tasks.orders import actions

bp = Blueprint("orders", __name__, url_prefix="/api/orders")
TAG = "orders"


@bp.post("/")
@doc("Create an order; the total is computed from the items", tag=TAG, body=OrderCreateSchema,
     response=OrderSchema, status=201, errors=(401, 409))
@idempotent(OrderIdempotencyKey)
def create_order():
    data = load_body(ORDER_CREATE)
    identity = current_identity()
    if data["seller_uuid"] == identity.user_uuid:
        raise ValidationFailed("validation_failed", "The request body is not valid.",
                               {"seller_uuid": ["A buyer cannot order from themselves."]})
    order = actions.create_order(identity.user_uuid, data, g.request_id)
    return ORDER.dump(order), 201


@bp.get("/")
@doc("My orders as buyer", tag=TAG, query=OrderListQuerySchema, response=page_of(OrderSchema))
def list_orders():
    return _my_orders(Order.buyer_uuid)


@bp.get("/sold/")
@doc("My orders as seller", tag=TAG, query=OrderListQuerySchema, response=page_of(OrderSchema))
def list_sold_orders():
    return _my_orders(Order.seller_uuid)


def _my_orders(side):
    query = load_query(ORDER_LIST_QUERY)
    select = queries.orders_of(side, current_identity().user_uuid, query["status"])
    return paginate(select, query["page"], query["page_size"], ORDERS.dump), 200


@bp.get("/stats/")
@doc("Counts and amounts of my orders, as buyer and as seller", tag=TAG, response=OrderStatsSchema)
def order_stats():
    return ORDER_STATS.dump(queries.stats_of(current_identity().user_uuid)), 200


@bp.get("/<uuid:order_uuid>/")
@doc("One order I am buyer or seller of", tag=TAG, response=OrderSchema)
def get_order(order_uuid: uuid.UUID):
    return ORDER.dump(queries.visible_order(current_identity(), order_uuid)), 200


@bp.get("/<uuid:order_uuid>/events/")
@doc("The audit trail of an order", tag=TAG, query=PageQuerySchema, response=page_of(OrderEventSchema))
def order_events(order_uuid: uuid.UUID):
    query = load_query(PAGE_QUERY)
    order = queries.visible_order(current_identity(), order_uuid)
    return paginate(queries.events_of(order), query["page"], query["page_size"], ORDER_EVENTS.dump), 200


def _buyers_order(order_uuid: uuid.UUID) -> Order:
    identity = current_identity()
    order = queries.visible_order(identity, order_uuid)
    if order.buyer_uuid != identity.user_uuid:
        raise Forbidden("not_order_buyer", "Only the buyer may do this.")
    return order


def _transition(change, order: Order, status: int = 200):
    """Run a state change and commit, or answer 409 naming the state that won."""
    try:
        change()
    except IllegalTransition as exc:
        db.session.rollback()
        raise Conflict("order_state_conflict", f"The order is {exc.current}; it cannot become {exc.target}.",
                       {"status": str(exc.current), "target": str(exc.target)}) from None
    db.session.commit()
    return ORDER.dump(order), status


@bp.post("/<uuid:order_uuid>/cancel/")
@doc("Cancel my order: unpaid → cancelled (200); paid → refunded in full first, answering 202 with the order "
     "still paid (it becomes cancelled when the refund settles; a cancel while that refund is in flight "
     "changes nothing, one after it failed asks again)", tag=TAG, body=OrderCancelSchema,
     response=OrderSchema, errors=(401, 403, 404, 409))
def cancel_order(order_uuid: uuid.UUID):
    data = load_body(ORDER_CANCEL)
    order = _buyers_order(order_uuid)
    actor = str(current_identity().user_uuid)
    try:
        return _transition(lambda: actions.cancel_order(order, actor, data["reason"], g.request_id), order)
    except actions.RefundRequired:
        return _transition(lambda: actions.request_refund(order, actor, data["reason"], g.request_id), order, 202)


@bp.post("/<uuid:order_uuid>/complete/")
@doc("Confirm receipt of my paid order (409 `refund_in_progress` while the refund of my cancel is in flight)",
     tag=TAG, body=EmptySchema, response=OrderSchema,
     errors=(401, 403, 404, 409))
def complete_order(order_uuid: uuid.UUID):
    load_body(EMPTY)
    order = _buyers_order(order_uuid)
    identity = current_identity()
    actor = str(identity.user_uuid)
    try:
        return _transition(lambda: actions.complete_order(order, actor, g.request_id), order)
    except actions.RefundInProgress:
        db.session.rollback()
        raise Conflict("refund_in_progress", "You cancelled this order and its refund is in progress; it "
                       "cannot be completed. If the refund fails, the order is paid again.",
                       {"status": "paid"}) from None

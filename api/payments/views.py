"""Payment endpoints (DESIGN.md §7): thin views over queries and `tasks.payments.actions`."""
from __future__ import annotations

import uuid

import sqlalchemy as sa
from flask import Blueprint, current_app, g, request

from api.common.auth import current_identity
from api.common.body import load_body, load_query
from api.common.errors import Conflict, Forbidden, NotFound, ValidationFailed
from api.common.idempotency import idempotent
from api.common.openapi import doc, page_of
from api.common.pagination import paginate
from api.payments.backlog import admit
from api.payments.orders_client import fetch_order
from api.payments.schemas import (
    EMPTY, PAYMENT, PAYMENT_CREATE, PAYMENT_LIST_QUERY, PAYMENTS, EmptySchema, PaymentCreateSchema,
    PaymentListQuerySchema, PaymentSchema,
)
from models import Payment, PaymentIdempotencyKey, db
from tasks.payments import actions
from tasks.payments.providers import is_configured

bp = Blueprint("payments", __name__, url_prefix="/api/payments")
TAG = "payments"


def _in_flight(status: str | None) -> Conflict:
    return Conflict("payment_in_flight", "This order already has a payment in flight or paid.", {"status": status})


@bp.post("/")
@doc("Pay an order; the amount is the order's total. Starts the risk and charge workflow", tag=TAG,
     body=PaymentCreateSchema, response=PaymentSchema, status=201, errors=(401, 403, 404, 409, 503))
@admit
@idempotent(PaymentIdempotencyKey)
def create_payment():
    data = load_body(PAYMENT_CREATE)
    identity = current_identity()
    settings = current_app.config["CFMP_SETTINGS"]
    if not is_configured(data["payment_method"], settings):
        raise ValidationFailed("payment_method_unavailable", f"{data['payment_method']} is not configured here.",
                               {"payment_method": [f"{data['payment_method']} is not configured on this server."]})
    order = fetch_order(settings, data["order_uuid"], request.headers["Authorization"], g.request_id)
    if order["buyer_uuid"] != str(identity.user_uuid):
        raise Forbidden("not_order_buyer", "Only the buyer may pay an order.")
    if order["status"] != "pending_payment":
        raise Conflict("order_not_payable", f"The order is {order['status']}; only pending_payment orders are paid.",
                       {"status": order["status"]})
    try:
        payment = actions.create_payment(identity.user_uuid, order, data["payment_method"], settings.payment_expiry)
    except actions.PaymentInFlight as exc:
        raise _in_flight(exc.status) from None
    return PAYMENT.dump(payment), 201


@bp.get("/")
@doc("My payments, newest first", tag=TAG, query=PaymentListQuerySchema, response=page_of(PaymentSchema))
def list_payments():
    query = load_query(PAYMENT_LIST_QUERY)
    select = sa.select(Payment).where(Payment.user_uuid == current_identity().user_uuid)
    if query["status"] is not None:
        select = select.where(Payment.status == query["status"])
    select = select.order_by(Payment.created_at.desc(), Payment.id.desc())
    return paginate(select, query["page"], query["page_size"], PAYMENTS.dump), 200


def visible_payment(payment_uuid: uuid.UUID) -> Payment:
    """The payment if the caller made it (or is admin); anyone else gets 404, as for orders."""
    identity = current_identity()
    select = sa.select(Payment).where(Payment.payment_uuid == payment_uuid)
    if not identity.is_admin:
        select = select.where(Payment.user_uuid == identity.user_uuid)
    payment = db.session.scalars(select).first()
    if payment is None:
        raise NotFound("payment_not_found", "No such payment.", {"payment_uuid": str(payment_uuid)})
    return payment


@bp.get("/<uuid:payment_uuid>/")
@doc("One of my payments", tag=TAG, response=PaymentSchema)
def get_payment(payment_uuid: uuid.UUID):
    return PAYMENT.dump(visible_payment(payment_uuid)), 200


@bp.post("/<uuid:payment_uuid>/cancel/")
@doc("Cancel my payment while it is pending, in review or processing", tag=TAG, body=EmptySchema,
     response=PaymentSchema, errors=(401, 404, 409))
def cancel_payment(payment_uuid: uuid.UUID):
    load_body(EMPTY)
    payment = visible_payment(payment_uuid)
    try:
        actions.cancel_payment(payment)
    except actions.StateConflict as exc:
        db.session.rollback()
        raise Conflict("payment_state_conflict", f"The payment is {exc.current}; it cannot be cancelled.",
                       {"status": str(exc.current)}) from None
    db.session.commit()
    return PAYMENT.dump(payment), 200

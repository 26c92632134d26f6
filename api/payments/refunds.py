"""Refund endpoints (DESIGN.md §7): thin views over `tasks.payments.refunds`.

Who may refund: the payment's seller (it is their sale to give back) or an admin. The payer sees the
payment and its refunds but gets 403 `refund_by_seller_only`: a buyer who wants their money back
cancels the paid order (`POST /api/orders/{uuid}/cancel/`), which gives the goods up too; a direct
refund would let them keep both. Anyone else gets 404. The amount is checked against what is left
here for a clear 422, and enforced by the database when the refund is reserved, so racing requests
never refund more than was captured.
"""
from __future__ import annotations

import uuid

import marshmallow
import sqlalchemy as sa
from flask import Blueprint

from api.common.auth import current_identity
from api.common.body import load_body, load_query
from api.common.errors import Conflict, Forbidden, NotFound, ValidationFailed
from api.common.idempotency import idempotent
from api.common.openapi import doc, page_of
from api.common.pagination import PageQuerySchema, paginate
from api.payments.schemas import REFUND, REFUND_CREATE, REFUND_LIST_QUERY, REFUNDS, RefundCreateSchema, RefundSchema
from common.tokens import Identity
from models import Payment, PaymentIdempotencyKey, Refund, db
from tasks.payments import refunds

bp = Blueprint("refunds", __name__, url_prefix="/api/payments")
TAG = "payments"


def _concerned_payment(identity: Identity, payment_uuid: uuid.UUID) -> Payment:
    """The payment if the caller paid it, sold through it, or is an admin; anyone else gets 404."""
    select = sa.select(Payment).where(Payment.payment_uuid == payment_uuid)
    if not identity.is_admin:
        select = select.where(sa.or_(Payment.user_uuid == identity.user_uuid,
                                     Payment.seller_uuid == identity.user_uuid))
    payment = db.session.scalars(select).first()
    if payment is None:
        raise NotFound("payment_not_found", "No such payment.", {"payment_uuid": str(payment_uuid)})
    return payment


def _load_refund_body(payment: Payment) -> dict:
    """The body, or 422 naming each bad field and what is left to refund."""
    try:
        return load_body(REFUND_CREATE)
    except marshmallow.ValidationError as exc:
        raise ValidationFailed("validation_failed", "The request body is not valid.",
                               {**exc.messages, "remainder": f"{payment.refundable_amount:.2f}"}) from None


@bp.post("/<uuid:payment_uuid>/refund/")
@doc("Refund a payment of my sale (seller) or any payment (admin), in part or in full (default: all that is "
     "left); starts the refund workflow. The buyer gets 403: they cancel the paid order instead", tag=TAG,
     body=RefundCreateSchema, response=RefundSchema, status=202, errors=(401, 403, 404, 409))
@idempotent(PaymentIdempotencyKey)
def create_refund(payment_uuid: uuid.UUID):
    identity = current_identity()
    payment = _concerned_payment(identity, payment_uuid)
    if not identity.is_admin and payment.seller_uuid != identity.user_uuid:
        raise Forbidden("refund_by_seller_only", "Only the seller or an admin may refund a payment; to get "
                        "your money back, cancel the paid order instead.",
                        {"cancel": f"/api/orders/{payment.order_uuid}/cancel/"})
    data = _load_refund_body(payment)
    try:
        refund = refunds.create_refund(payment.id, data["amount"], data["reason"], identity.user_uuid)
    except refunds.NotRefundable as exc:
        raise Conflict("payment_not_refundable", f"The payment is {exc.status}; only a succeeded or partially "
                       "refunded payment can be refunded.", {"status": str(exc.status)}) from None
    except refunds.NothingLeft:
        raise Conflict("nothing_to_refund", "Refunds done or in flight already hold the whole amount.",
                       {"remainder": "0.00"}) from None
    except refunds.ExceedsRemainder as exc:
        raise ValidationFailed("refund_exceeds_remainder", f"At most {exc.remainder:.2f} is left to refund.",
                               {"amount": [f"At most {exc.remainder:.2f}."],
                                "remainder": f"{exc.remainder:.2f}"}) from None
    return REFUND.dump(refund), 202


@bp.get("/<uuid:payment_uuid>/refunds/")
@doc("The refunds of a payment I made or received (seller), or any (admin), newest first", tag=TAG,
     query=PageQuerySchema, response=page_of(RefundSchema))
def list_refunds(payment_uuid: uuid.UUID):
    query = load_query(REFUND_LIST_QUERY)
    payment = _concerned_payment(current_identity(), payment_uuid)
    select = (sa.select(Refund).where(Refund.payment_id == payment.id)
              .order_by(Refund.created_at.desc(), Refund.id.desc()))
    return paginate(select, query["page"], query["page_size"], REFUNDS.dump), 200

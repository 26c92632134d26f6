"""Marshmallow schemas of the payment API: `*CreateSchema` loads, `*Schema` dumps."""
from __future__ import annotations

from marshmallow import Schema, fields, validate

from api.common.body import EmptySchema
from api.common.fields import Money, Text
from api.common.pagination import PageQuerySchema
from models import PaymentStatus, RefundStatus

# Every method this system knows; one whose provider is not configured here is refused by the view
# (422 payment_method_unavailable).
METHODS = ("alipay", "wechat_pay", "sandbox")


class PaymentCreateSchema(Schema):
    order_uuid = fields.UUID(required=True)
    payment_method = fields.String(required=True, validate=validate.OneOf(
        METHODS, error=f"One of {', '.join(METHODS)}."))


class PaymentSchema(Schema):
    payment_uuid = fields.UUID()
    order_uuid = fields.UUID()
    amount = Money()
    currency = fields.String()
    payment_method = fields.String()
    status = fields.Enum(PaymentStatus, by_value=True)
    payment_data = fields.Dict()
    failure_reason = fields.String(allow_none=True)
    refund_due = fields.Boolean()
    refunded_amount = Money(metadata={"description": "What the refunds that succeeded gave back."})
    refundable_amount = Money(metadata={"description": "What is left to refund (refunds in flight hold their "
                                                       "amount)."})
    created_at = fields.DateTime()
    paid_at = fields.DateTime(allow_none=True)
    expires_at = fields.DateTime()


class PaymentListQuerySchema(PageQuerySchema):
    status = fields.Enum(PaymentStatus, by_value=True, load_default=None)


class RefundCreateSchema(Schema):
    amount = Money(load_default=None, metadata={"description": "Default: all that is left to refund."})
    reason = Text(load_default="", validate=validate.Length(max=255))


class RefundSchema(Schema):
    refund_uuid = fields.UUID()
    payment_uuid = fields.UUID(attribute="payment.payment_uuid")
    amount = Money()
    currency = fields.String()
    reason = fields.String()
    status = fields.Enum(RefundStatus, by_value=True)
    failure_reason = fields.String(allow_none=True)
    created_at = fields.DateTime()
    updated_at = fields.DateTime()
    refunded_at = fields.DateTime(allow_none=True)


class CallbackAckSchema(Schema):
    received = fields.Boolean()
    duplicate = fields.Boolean()


PAYMENT_CREATE = PaymentCreateSchema()
PAYMENT = PaymentSchema()
PAYMENTS = PaymentSchema(many=True)
PAYMENT_LIST_QUERY = PaymentListQuerySchema()
EMPTY = EmptySchema()
REFUND_CREATE = RefundCreateSchema()
REFUND = RefundSchema()
REFUNDS = RefundSchema(many=True)
REFUND_LIST_QUERY = PageQuerySchema()

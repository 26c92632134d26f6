"""Marshmallow schemas of the payment API: `*CreateSchema` loads, `*Schema` dumps."""
from __future__ import annotations

from marshmallow import Schema, fields, validate

from api.common.body import EmptySchema
from api.common.fields import Money
from api.common.pagination import PageQuerySchema
from models import PaymentStatus

METHODS = ("alipay", "wechat_pay", "sandbox")
# Methods with a provider adapter in this release; the others are refused with 422 until they have one.
AVAILABLE_METHODS = ("sandbox",)


class PaymentCreateSchema(Schema):
    order_uuid = fields.UUID(required=True)
    payment_method = fields.String(required=True, validate=validate.OneOf(
        AVAILABLE_METHODS, error=f"One of {', '.join(AVAILABLE_METHODS)} ({', '.join(METHODS)} planned)."))


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
    created_at = fields.DateTime()
    paid_at = fields.DateTime(allow_none=True)
    expires_at = fields.DateTime()


class PaymentListQuerySchema(PageQuerySchema):
    status = fields.Enum(PaymentStatus, by_value=True, load_default=None)


class CallbackAckSchema(Schema):
    received = fields.Boolean()
    duplicate = fields.Boolean()


PAYMENT_CREATE = PaymentCreateSchema()
PAYMENT = PaymentSchema()
PAYMENTS = PaymentSchema(many=True)
PAYMENT_LIST_QUERY = PaymentListQuerySchema()
EMPTY = EmptySchema()

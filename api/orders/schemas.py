"""Marshmallow schemas of the order API: `*CreateSchema` loads, `*Schema` dumps."""
from __future__ import annotations

from decimal import Decimal

from marshmallow import Schema, ValidationError, fields, validate, validates_schema

from api.common.body import EmptySchema
from api.common.fields import Money, StrictInteger, Text
from api.common.pagination import PageQuerySchema
from models import OrderStatus
from models.base import MAX_MONEY

MAX_ITEMS = 50
MAX_QUANTITY = 9999
PHONE = validate.Regexp(r"^\+?[0-9][0-9 ()-]{2,30}$", error="Not a valid phone number.")
CURRENCY = validate.Regexp(r"^[A-Z]{3}$", error="An ISO 4217 code such as CNY.")


class OrderItemCreateSchema(Schema):
    product_uuid = fields.UUID(required=True)
    product_name = Text(required=True, validate=validate.Length(max=200))
    product_price = Money(required=True)
    quantity = StrictInteger(required=True, validate=validate.Range(min=1, max=MAX_QUANTITY))
    product_image = Text(load_default="", validate=validate.Length(max=500))


class OrderCreateSchema(Schema):
    seller_uuid = fields.UUID(required=True)
    items = fields.List(fields.Nested(OrderItemCreateSchema), required=True,
                        validate=validate.Length(min=1, max=MAX_ITEMS),
                        metadata={"description": f"The total, the sum of price × quantity, is at most {MAX_MONEY}."})
    currency = fields.String(load_default="CNY", validate=CURRENCY)
    shipping_name = Text(required=True, validate=validate.Length(max=100))
    shipping_phone = Text(required=True, validate=PHONE)
    shipping_address = Text(required=True, validate=validate.Length(max=500))
    shipping_postal_code = Text(load_default="", validate=validate.Length(max=16))
    remark = Text(load_default="", validate=validate.Length(max=500))

    @validates_schema
    def _total_fits(self, data, **kwargs):
        total = sum((item["product_price"] * item["quantity"] for item in data.get("items", [])), Decimal(0))
        if total > MAX_MONEY:
            raise ValidationError(f"The order total may be at most {MAX_MONEY}.", "items")


class OrderCancelSchema(Schema):
    reason = Text(load_default="", validate=validate.Length(max=255))


class OrderItemSchema(Schema):
    product_uuid = fields.UUID()
    product_name = fields.String()
    product_price = Money()
    product_image = fields.String()
    quantity = fields.Integer()


class OrderSchema(Schema):
    order_uuid = fields.UUID()
    buyer_uuid = fields.UUID()
    seller_uuid = fields.UUID()
    total_amount = Money()
    currency = fields.String()
    status = fields.Enum(OrderStatus, by_value=True)
    payment_method = fields.String(allow_none=True)
    payment_time = fields.DateTime(allow_none=True)
    remark = fields.String()
    cancel_reason = fields.String(allow_none=True)
    shipping_name = fields.String()
    shipping_phone = fields.String()
    shipping_address = fields.String()
    shipping_postal_code = fields.String()
    created_at = fields.DateTime()
    updated_at = fields.DateTime()
    items = fields.List(fields.Nested(OrderItemSchema))


class OrderEventSchema(Schema):
    event_type = fields.String()
    actor = fields.String()
    from_status = fields.String(allow_none=True)
    to_status = fields.String()
    reason = fields.String()
    request_id = fields.String()
    created_at = fields.DateTime()


class OrderListQuerySchema(PageQuerySchema):
    status = fields.Enum(OrderStatus, by_value=True, load_default=None)


class SideStatsSchema(Schema):
    count = fields.Integer()
    by_status = fields.Dict(keys=fields.String(), values=fields.Integer())
    total_amount = Money(metadata={"description": "Sum of paid and completed orders."})


class OrderStatsSchema(Schema):
    as_buyer = fields.Nested(SideStatsSchema)
    as_seller = fields.Nested(SideStatsSchema)


ORDER_CREATE = OrderCreateSchema()
ORDER_CANCEL = OrderCancelSchema()
EMPTY = EmptySchema()
ORDER = OrderSchema()
ORDERS = OrderSchema(many=True)
ORDER_EVENTS = OrderEventSchema(many=True)
ORDER_LIST_QUERY = OrderListQuerySchema()
PAGE_QUERY = PageQuerySchema()
ORDER_STATS = OrderStatsSchema()

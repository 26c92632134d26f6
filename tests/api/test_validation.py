"""Bad input gets a clear 4xx in the error shape and changes nothing."""
from __future__ import annotations

import pytest

from tests.factories import item, order_body

SELLER = "6f1c1b1e-8d1e-4c56-9a49-0a8f0d5f3c11"


def _without(body: dict, key: str) -> dict:
    return {k: v for k, v in body.items() if k != key}


INVALID = {
    "missing seller": (_without(order_body(SELLER), "seller_uuid"), "seller_uuid"),
    "missing items": (_without(order_body(SELLER), "items"), "items"),
    "missing shipping name": (_without(order_body(SELLER), "shipping_name"), "shipping_name"),
    "blank shipping address": (order_body(SELLER, shipping_address="   "), "shipping_address"),
    "bad phone": (order_body(SELLER, shipping_phone="call me"), "shipping_phone"),
    "no items": (order_body(SELLER, items=[]), "items"),
    "too many items": (order_body(SELLER, items=[item() for _ in range(51)]), "items"),
    "zero quantity": (order_body(SELLER, items=[item(quantity=0)]), "items"),
    "negative quantity": (order_body(SELLER, items=[item(quantity=-1)]), "items"),
    "fractional quantity": (order_body(SELLER, items=[item(quantity=1.5)]), "items"),
    "string quantity": (order_body(SELLER, items=[item(quantity="2")]), "items"),
    "boolean quantity": (order_body(SELLER, items=[item(quantity=True)]), "items"),
    "zero price": (order_body(SELLER, items=[item(product_price="0")]), "items"),
    "negative price": (order_body(SELLER, items=[item(product_price="-5.00")]), "items"),
    "three decimals": (order_body(SELLER, items=[item(product_price="1.005")]), "items"),
    "price not a number": (order_body(SELLER, items=[item(product_price="ten")]), "items"),
    "price NaN": (order_body(SELLER, items=[item(product_price="NaN")]), "items"),
    "price too large": (order_body(SELLER, items=[item(product_price="99999999999.00")]), "items"),
    "total too large": (order_body(SELLER, items=[item(product_price="9999999999.00", quantity=2)]), "items"),
    "seller not a uuid": (order_body("nobody"), "seller_uuid"),
    "items not a list": (order_body(SELLER, items={"a": 1}), "items"),
    "name wrong type": (order_body(SELLER, shipping_name=42), "shipping_name"),
    "unknown field": (order_body(SELLER, total_amount="0.01"), "total_amount"),
    "unknown item field": (order_body(SELLER, items=[item(discount="5")]), "items"),
    "bad currency": (order_body(SELLER, currency="yuan"), "currency"),
    "remark too long": (order_body(SELLER, remark="x" * 501), "remark"),
}


@pytest.mark.parametrize("body,field", INVALID.values(), ids=INVALID.keys())
def test_invalid_order_is_422_naming_the_field(stack, buyer, body, field):
    reply = stack.api(buyer.token).post("/api/orders/", body)
    assert reply.status == 422, reply.json
    assert reply.json["error"] == "validation_failed"
    assert field in reply.json["details"]
    assert set(reply.json) == {"error", "message", "details", "request_id"}
    assert stack.api(buyer.token).get("/api/orders/").json["count"] == 0


def test_ordering_from_yourself_is_refused(stack, buyer):
    reply = stack.api(buyer.token).post("/api/orders/", order_body(buyer.uuid))
    assert reply.status == 422 and "seller_uuid" in reply.json["details"]


@pytest.mark.parametrize("raw", [b"{not json", b'{"a": 1', b"\xff\xfe", b'{"seller_uuid": NaN}'])
def test_malformed_json_is_400(stack, buyer, raw):
    reply = stack.api(buyer.token).post("/api/orders/", raw=raw)
    assert reply.status == 400 and reply.json["error"] == "malformed_json"


def test_non_object_body_is_422(stack, buyer):
    reply = stack.api(buyer.token).post("/api/orders/", [1, 2])
    assert reply.status == 422 and "_schema" in reply.json["details"]


def test_deeply_nested_json_is_400_not_500(stack, buyer):
    raw = b"[" * 100_000 + b"]" * 100_000
    reply = stack.direct(buyer.token).post("/api/orders/", raw=raw)
    assert reply.status in (400, 413) and reply.json["error"] in ("malformed_json", "payload_too_large")
    deep = b'{"remark": ' + b"[" * 5000 + b"]" * 5000 + b"}"
    reply = stack.api(buyer.token).post("/api/orders/", raw=deep)
    assert reply.status in (400, 422) and reply.status != 500


def test_oversized_body_is_413(stack, buyer, seller):
    body = order_body(seller.uuid, remark="x" * (stack.settings.gateway_max_body + 10))
    for api in (stack.api(buyer.token), stack.direct(buyer.token)):
        reply = api.post("/api/orders/", body)
        assert reply.status == 413 and reply.json["error"] == "payload_too_large"


def test_cancel_body_is_validated(stack, buyer, seller):
    order = stack.api(buyer.token).post("/api/orders/", order_body(seller.uuid)).json
    path = f"/api/orders/{order['order_uuid']}/cancel/"
    assert stack.api(buyer.token).post(path, {"reason": "x" * 256}).status == 422
    assert stack.api(buyer.token).post(path, {"why": "no"}).status == 422
    assert stack.api(buyer.token).post(f"/api/orders/{order['order_uuid']}/complete/", {"x": 1}).status == 422
    assert stack.api(buyer.token).get(f"/api/orders/{order['order_uuid']}/").json["status"] == "pending_payment"


def test_wrong_method_and_unknown_path(stack, buyer):
    reply = stack.api(buyer.token).request("DELETE", "/api/orders/")
    assert reply.status == 405 and reply.json["error"] == "method_not_allowed"
    reply = stack.direct(buyer.token).get("/api/nothing/")
    assert reply.status == 404 and reply.json["error"] == "not_found"

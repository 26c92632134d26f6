"""Hostile bodies and query strings, on every operation that takes them (from each service's
`/openapi.json`): oversized is 413, absurdly nested is 400, SQL meta-characters are stored verbatim
or refused as invalid, and none of it is ever a 5xx.

tests/api/test_validation.py has the order service's cases one by one; these sweep all services.
"""
from __future__ import annotations


import pytest

from tests.factories import item, order_body
from tests.payments.conftest import paid_order, refunds_of
from tests.security.test_access import PATH_PARAM, SERVICES, operations

NESTED = b'{"a": ' + b"[" * 10_000 + b"]" * 10_000 + b"}"
# Quotes, comment and statement terminators, LIKE wildcards, backslashes, a UNION.
SQL = ["'; DROP TABLE orders;--", "' OR '1'='1", '"); --', "%_\\'\\\\", "1 UNION SELECT 1", "O'Brien"]


def _bodies(pay, ids: dict):
    """(METHOD, concrete path) of every operation with a request body, with real ids: a view may
    look its resource up before it reads the body."""
    for method, template in operations(pay):
        if method in ("POST", "PUT", "PATCH"):
            yield method, PATH_PARAM.sub(lambda m: ids[m[1]], template.replace("{provider}", "sandbox"))


@pytest.mark.parametrize("via", ["gateway", "service"])
def test_oversized_bodies_are_413_on_every_service(stack, buyer, via):
    body = b'{"x": "' + b"x" * (stack.settings.gateway_max_body + 1) + b'"}'
    for service in SERVICES:
        api = stack.api(buyer.token) if via == "gateway" else stack.direct(buyer.token, service=service)
        path = {"orders": "/api/orders/", "payments": "/api/payments/",
                "notifications": "/api/notifications/read-all/"}[service]
        reply = api.post(path, raw=body)
        assert (reply.status, reply.json["error"]) == (413, "payload_too_large"), service


def test_ten_thousand_levels_of_nesting_are_400_on_every_body(world, pay, admin):
    api = pay.api(admin.token)  # admin: the risk endpoints read their bodies too, any payment is visible
    probed = 0
    for method, path in _bodies(pay, world):
        reply = api.request(method, path, raw=NESTED)
        if path.startswith("/api/payments/callback/"):
            assert reply.status == 401, reply.json  # the signature is checked before the body is read
        else:
            assert (reply.status, reply.json["error"]) == (400, "malformed_json"), (method, path, reply.json)
        probed += 1
    assert probed >= 12


# The order's text fields: free text (with its length limit) is stored as sent, strict syntax refused.
FREE_TEXT = {"product_name": 200, "product_image": 500, "shipping_name": 100, "shipping_address": 500,
             "shipping_postal_code": 16, "remark": 500}
STRICT = ("shipping_phone", "currency")
ITEM_FIELDS = ("product_name", "product_image")


def test_every_order_text_field_is_covered(pay):
    spec = pay.direct(service="orders").get("/openapi.json").json["components"]["schemas"]
    text = {name for schema in ("OrderCreate", "OrderItemCreate")
            for name, prop in spec[schema]["properties"].items()
            if prop.get("type") == "string" and "format" not in prop}
    assert text == set(FREE_TEXT) | set(STRICT)


def test_sql_in_every_order_text_field_is_stored_verbatim_or_refused(pay, buyer, seller):
    api = pay.api(buyer.token)
    for text in SQL:
        values = {field: text[:limit] for field, limit in FREE_TEXT.items()}
        body = order_body(seller.uuid, items=[item(**{f: values.pop(f) for f in ITEM_FIELDS})], **values)
        reply = api.post("/api/orders/", body)
        assert reply.status == 201, (text, reply.json)
        made = api.get(f"/api/orders/{reply.json['order_uuid']}/").json
        assert all(
            {**made, **made["items"][0]}[field] == text[:limit] for field, limit in FREE_TEXT.items()), made
        for field in STRICT:
            refused = api.post("/api/orders/", order_body(seller.uuid, **{field: text}))
            assert (refused.status, list(refused.json["details"])) == (422, [field]), refused.json
    assert api.get("/api/orders/?page_size=100").json["count"] == len(SQL)


def test_sql_in_the_other_text_fields_is_stored_verbatim_or_refused(pay, buyer, seller, admin):
    order, payment = paid_order(pay, buyer, seller)
    api = pay.api(buyer.token)
    for text in SQL:
        refund = pay.api(admin.token).post(f"/api/payments/{payment['payment_uuid']}/refund/",
                                           {"amount": "1.00", "reason": text})
        assert refund.status == 202 and refund.json["reason"] == text
        prefs = api.request("PUT", "/api/notifications/preferences/",
                            {"email_address": f"{text}@example.com", "webhook_url": f"http://h/{text}"})
        assert prefs.status in (200, 422), prefs.json
        if prefs.status == 200:
            assert prefs.json["email_address"] == f"{text}@example.com"
        policy = pay.api(admin.token).post("/api/risk/policies/", {
            "name": text, "rule": "amount", "weight": 1, "params": {"threshold": "1.00"}})
        assert policy.status == 201 and policy.json["name"] == text
    assert sorted(r["reason"] for r in refunds_of(pay, buyer, payment["payment_uuid"])) == sorted(SQL)
    cancel = api.post("/api/orders/" + order["order_uuid"] + "/cancel/", {"reason": SQL[0]})
    assert cancel.status == 202 and api.get(f"/api/orders/{order['order_uuid']}/events/").json["results"][-1][
        "reason"] == SQL[0]


def test_sql_in_every_query_parameter_and_path_is_refused_or_ignored(pay, admin, stranger):
    """Every documented query parameter of every list, and a path id: 422 or 200, never an error;
    and an injected filter never widens a list."""
    queried = 0
    for service in SERVICES:
        spec = pay.direct(service=service).get("/openapi.json").json
        for template, ops in spec["paths"].items():
            if PATH_PARAM.search(template):
                continue
            names = [p["name"] for p in ops.get("get", {}).get("parameters", []) if p["in"] == "query"]
            for name in names:
                for text in SQL:
                    for user in (stranger, admin):
                        reply = pay.api(user.token).get(f"{template}?{name}={_quote(text)}")
                        assert reply.status in (200, 403, 422), (template, name, text, reply.json)
                        if reply.status == 200 and user is stranger:
                            assert reply.json["count"] == 0, (template, name, text)
                        queried += 1
    assert queried >= 100
    for text in SQL:
        reply = pay.api(stranger.token).get(f"/api/orders/{_quote(text)}/")
        assert (reply.status, reply.json["error"]) == (404, "not_found")


def _quote(text: str) -> str:
    from urllib.parse import quote

    return quote(text, safe="")

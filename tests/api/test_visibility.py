"""Another user's order answers 404 everywhere, whatever headers they forge."""
from __future__ import annotations

from tests.factories import order_body


def test_stranger_sees_nothing(stack, buyer, seller, stranger):
    order = stack.api(buyer.token).post("/api/orders/", order_body(seller.uuid)).json
    api = stack.api(stranger.token)
    base = f"/api/orders/{order['order_uuid']}"
    for method, path in [("GET", f"{base}/"), ("GET", f"{base}/events/"), ("POST", f"{base}/cancel/"),
                         ("POST", f"{base}/complete/")]:
        reply = api.request(method, path, body={} if method == "POST" else None)
        assert reply.status == 404, (method, path, reply.json)
        assert reply.json["error"] == "order_not_found"
    assert api.get("/api/orders/").json["count"] == 0
    assert api.get("/api/orders/sold/").json["count"] == 0
    assert stack.api(buyer.token).get(f"{base}/").json["status"] == "pending_payment"


def test_forged_identity_headers_are_ignored(stack, buyer, seller, stranger):
    order = stack.api(buyer.token).post("/api/orders/", order_body(seller.uuid)).json
    forged = {"X-User-UUID": str(buyer.uuid), "X-User-Role": "admin"}
    reply = stack.api(stranger.token).get(f"/api/orders/{order['order_uuid']}/", headers=forged)
    assert reply.status == 404
    created = stack.api(stranger.token).post("/api/orders/", order_body(seller.uuid), headers=forged).json
    assert created["buyer_uuid"] == str(stranger.uuid)


def test_services_verify_tokens_themselves(stack, buyer, seller):
    direct = stack.direct()
    reply = direct.get("/api/orders/", headers={"X-User-UUID": str(buyer.uuid), "X-User-Role": "user"})
    assert reply.status == 401 and reply.json["error"] == "missing_token"
    assert stack.direct(buyer.token).get("/api/orders/").status == 200

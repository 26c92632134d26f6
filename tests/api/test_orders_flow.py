"""Every order endpoint through the real gateway: the happy paths and the state machine."""
from __future__ import annotations

import uuid

from tests.factories import force_status, item, order_body


def create(stack, buyer, seller, **overrides):
    reply = stack.api(buyer.token).post("/api/orders/", order_body(seller.uuid, **overrides))
    assert reply.status == 201, reply.json
    return reply.json


def test_create_computes_total_on_the_server(stack, buyer, seller):
    order = create(stack, buyer, seller, items=[item(product_price="19.99", quantity=3), item(product_price=0.1, quantity=7)])
    assert order["total_amount"] == "60.67"  # 59.97 + 0.70, exact: no float anywhere
    assert order["status"] == "pending_payment"
    assert order["buyer_uuid"] == str(buyer.uuid) and order["seller_uuid"] == str(seller.uuid)
    assert order["currency"] == "CNY"
    assert [i["product_price"] for i in order["items"]] == ["19.99", "0.10"]
    assert order["created_at"].endswith("+00:00")


def test_buyer_and_seller_lists(stack, buyer, seller, stranger):
    first = create(stack, buyer, seller)
    second = create(stack, buyer, seller)
    create(stack, stranger, seller)
    mine = stack.api(buyer.token).get("/api/orders/").json
    assert mine["count"] == 2
    assert [o["order_uuid"] for o in mine["results"]] == [second["order_uuid"], first["order_uuid"]]
    sold = stack.api(seller.token).get("/api/orders/sold/").json
    assert sold["count"] == 3
    assert stack.api(seller.token).get("/api/orders/").json["count"] == 0


def test_status_filter(stack, buyer, seller):
    keep = create(stack, buyer, seller)
    gone = create(stack, buyer, seller)
    assert stack.api(buyer.token).post(f"/api/orders/{gone['order_uuid']}/cancel/", {}).status == 200
    pending = stack.api(buyer.token).get("/api/orders/?status=pending_payment").json
    assert [o["order_uuid"] for o in pending["results"]] == [keep["order_uuid"]]
    cancelled = stack.api(buyer.token).get("/api/orders/?status=cancelled").json
    assert [o["order_uuid"] for o in cancelled["results"]] == [gone["order_uuid"]]
    bad = stack.api(buyer.token).get("/api/orders/?status=shipped")
    assert bad.status == 422 and "status" in bad.json["details"]


def test_detail_for_buyer_and_seller(stack, buyer, seller):
    order = create(stack, buyer, seller)
    for user in (buyer, seller):
        reply = stack.api(user.token).get(f"/api/orders/{order['order_uuid']}/")
        assert reply.status == 200 and reply.json == order


def test_cancel_records_reason_event_and_audit(stack, buyer, seller):
    order = create(stack, buyer, seller)
    reply = stack.api(buyer.token).post(f"/api/orders/{order['order_uuid']}/cancel/", {"reason": "changed my mind"},
                                        headers={"X-Request-ID": "req-cancel-1"})
    assert reply.status == 200
    assert reply.json["status"] == "cancelled" and reply.json["cancel_reason"] == "changed my mind"
    events = stack.api(seller.token).get(f"/api/orders/{order['order_uuid']}/events/").json
    assert [(e["event_type"], e["from_status"], e["to_status"]) for e in events["results"]] == [
        ("created", None, "pending_payment"), ("cancelled", "pending_payment", "cancelled")]
    assert events["results"][1]["actor"] == str(buyer.uuid)
    assert events["results"][1]["request_id"] == "req-cancel-1"
    again = stack.api(buyer.token).post(f"/api/orders/{order['order_uuid']}/cancel/", {})
    assert again.status == 409 and again.json["error"] == "order_state_conflict"


def test_complete_needs_a_paid_order(stack, buyer, seller):
    order = create(stack, buyer, seller)
    path = f"/api/orders/{order['order_uuid']}/complete/"
    early = stack.api(buyer.token).post(path, {})
    assert early.status == 409 and early.json["details"]["status"] == "pending_payment"
    force_status(stack, order["order_uuid"], "paid")
    done = stack.api(buyer.token).post(path)
    assert done.status == 200 and done.json["status"] == "completed"
    assert stack.api(buyer.token).post(f"/api/orders/{order['order_uuid']}/cancel/", {}).status == 409


def test_cancelling_a_paid_order_asks_for_a_refund_first(stack, buyer, seller):
    """202 with the order still paid; it is cancelled once the refund settles (tests/payments/test_refund*)."""
    order = create(stack, buyer, seller)
    force_status(stack, order["order_uuid"], "paid")
    reply = stack.api(buyer.token).post(f"/api/orders/{order['order_uuid']}/cancel/", {"reason": "changed my mind"})
    assert reply.status == 202 and reply.json["status"] == "paid"
    assert stack.api(buyer.token).get(f"/api/orders/{order['order_uuid']}/").json["status"] == "paid"
    [requested] = [e for e in stack.api(buyer.token).get(f"/api/orders/{order['order_uuid']}/events/").json["results"]
                   if e["event_type"] == "refund_requested"]
    assert (requested["actor"], requested["reason"]) == (str(buyer.uuid), "changed my mind")
    assert stack.api(seller.token).post(f"/api/orders/{order['order_uuid']}/cancel/", {}).status == 403


def test_a_paid_order_being_refunded_cannot_be_completed(stack, buyer, seller):
    """The buyer cancelled it: until its refund settles (cancelled) or fails (paid again) it is not
    theirs to complete, or they would keep the goods and get the money back. Cancelling it again
    meanwhile asks for nothing more."""
    order = create(stack, buyer, seller)
    force_status(stack, order["order_uuid"], "paid")
    api = stack.api(buyer.token)
    assert api.post(f"/api/orders/{order['order_uuid']}/cancel/", {}).status == 202
    refused = api.post(f"/api/orders/{order['order_uuid']}/complete/", {})
    assert (refused.status, refused.json["error"]) == (409, "refund_in_progress")
    again = api.post(f"/api/orders/{order['order_uuid']}/cancel/", {"reason": "still want it gone"})
    assert (again.status, again.json["status"]) == (202, "paid")
    events = api.get(f"/api/orders/{order['order_uuid']}/events/").json["results"]
    assert [e["event_type"] for e in events] == ["created", "refund_requested"]
    assert api.get(f"/api/orders/{order['order_uuid']}/").json["status"] == "paid"


def test_only_the_buyer_changes_an_order(stack, buyer, seller):
    order = create(stack, buyer, seller)
    reply = stack.api(seller.token).post(f"/api/orders/{order['order_uuid']}/cancel/", {})
    assert reply.status == 403 and reply.json["error"] == "not_order_buyer"
    assert stack.api(buyer.token).get(f"/api/orders/{order['order_uuid']}/").json["status"] == "pending_payment"


def test_stats(stack, buyer, seller):
    a = create(stack, buyer, seller, items=[item(product_price="10.00", quantity=1)])
    create(stack, buyer, seller, items=[item(product_price="5.00", quantity=1)])
    force_status(stack, a["order_uuid"], "paid")
    stats = stack.api(buyer.token).get("/api/orders/stats/").json
    assert stats["as_buyer"]["count"] == 2
    assert stats["as_buyer"]["by_status"] == {"pending_payment": 1, "paid": 1, "completed": 0, "cancelled": 0}
    assert stats["as_buyer"]["total_amount"] == "10.00"
    assert stats["as_seller"]["count"] == 0 and stats["as_seller"]["total_amount"] == "0.00"
    assert stack.api(seller.token).get("/api/orders/stats/").json["as_seller"]["count"] == 2


def test_unknown_order_is_404(stack, buyer):
    reply = stack.api(buyer.token).get(f"/api/orders/{uuid.uuid4()}/")
    assert reply.status == 404 and reply.json["error"] == "order_not_found"
    assert stack.api(buyer.token).get("/api/orders/not-a-uuid/").status == 404


def test_admin_reads_any_order(stack, buyer, seller, make_user):
    order = create(stack, buyer, seller)
    admin = make_user("admin")
    assert stack.api(admin.token).get(f"/api/orders/{order['order_uuid']}/").status == 200

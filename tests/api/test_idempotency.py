"""`Idempotency-Key` on POST /api/orders/: replay, mismatch, in flight, and concurrency."""
from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

from tests.factories import order_body


def test_same_key_same_body_replays_the_first_response(stack, buyer, seller):
    api = stack.api(buyer.token)
    body = order_body(seller.uuid)
    first = api.post("/api/orders/", body, headers={"Idempotency-Key": "order-1"})
    again = api.post("/api/orders/", dict(reversed(list(body.items()))), headers={"Idempotency-Key": "order-1"})
    assert first.status == again.status == 201
    assert again.json == first.json
    assert again.headers.get("Idempotent-Replayed") == "true"
    assert api.get("/api/orders/").json["count"] == 1


def test_same_key_other_body_is_422(stack, buyer, seller):
    api = stack.api(buyer.token)
    assert api.post("/api/orders/", order_body(seller.uuid), headers={"Idempotency-Key": "k"}).status == 201
    reply = api.post("/api/orders/", order_body(seller.uuid, remark="other"), headers={"Idempotency-Key": "k"})
    assert reply.status == 422 and reply.json["error"] == "idempotency_key_reused"
    assert api.get("/api/orders/").json["count"] == 1


def test_keys_are_per_user(stack, buyer, seller, stranger):
    body = order_body(seller.uuid)
    assert stack.api(buyer.token).post("/api/orders/", body, headers={"Idempotency-Key": "shared"}).status == 201
    other = stack.api(stranger.token).post("/api/orders/", body, headers={"Idempotency-Key": "shared"})
    assert other.status == 201 and other.json["buyer_uuid"] == str(stranger.uuid)


def test_a_rejected_request_does_not_burn_the_key(stack, buyer, seller):
    api = stack.api(buyer.token)
    bad = api.post("/api/orders/", order_body(seller.uuid, items=[]), headers={"Idempotency-Key": "retry-me"})
    assert bad.status == 422
    good = api.post("/api/orders/", order_body(seller.uuid), headers={"Idempotency-Key": "retry-me"})
    assert good.status == 201


def test_key_length_is_checked(stack, buyer, seller):
    reply = stack.api(buyer.token).post("/api/orders/", order_body(seller.uuid), headers={"Idempotency-Key": "k" * 256})
    assert reply.status == 422 and reply.json["error"] == "invalid_idempotency_key"


def test_concurrent_requests_with_one_key_create_one_order(stack, buyer, seller):
    api = stack.api(buyer.token)
    body = order_body(seller.uuid)
    with ThreadPoolExecutor(max_workers=10) as pool:
        replies = list(pool.map(lambda _: api.post("/api/orders/", body, headers={"Idempotency-Key": "race"}), range(10)))
    statuses = sorted(r.status for r in replies)
    assert set(statuses) <= {201, 409}, statuses
    created = {r.json["order_uuid"] for r in replies if r.status == 201}
    assert len(created) == 1
    assert all(r.json["error"] == "idempotency_request_in_flight" for r in replies if r.status == 409)
    assert api.get("/api/orders/").json["count"] == 1
    replay = api.post("/api/orders/", body, headers={"Idempotency-Key": "race"})
    assert replay.status == 201 and replay.json["order_uuid"] in created

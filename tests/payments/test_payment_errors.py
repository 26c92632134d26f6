"""Bad input answers the right 4xx and changes nothing; racing payments leave exactly one."""
from __future__ import annotations

import json
import uuid
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal

import sqlalchemy as sa

from models import Payment, PaymentCallback, PaymentStatus, db
from tasks.payments.providers.sandbox import SIGNATURE_HEADER, SandboxProvider
from tests.factories import force_status
from tests.payments.conftest import new_order, start_payment, wait_payment
from tests.support.waiting import stays


def payments_of(stack, order_uuid: str) -> list[Payment]:
    with stack.apps["payments"].app_context():
        rows = db.session.scalars(sa.select(Payment).where(Payment.order_uuid == uuid.UUID(order_uuid))).all()
        db.session.expunge_all()
        return rows


def test_bad_create_requests(pay, buyer, seller, stranger):
    api = pay.api(buyer.token)
    order = new_order(pay, buyer, seller)
    wrong = api.post("/api/payments/", {"order_uuid": order["order_uuid"], "payment_method": "bitcoin"})
    assert wrong.status == 422 and "payment_method" in wrong.json["details"]
    extra = api.post("/api/payments/", {"order_uuid": order["order_uuid"], "payment_method": "sandbox", "amount": "1"})
    assert extra.status == 422 and "amount" in extra.json["details"]  # the amount is never the client's
    unknown = api.post("/api/payments/", {"order_uuid": str(uuid.uuid4()), "payment_method": "sandbox"})
    assert (unknown.status, unknown.json["error"]) == (404, "order_not_found")
    foreign = pay.api(stranger.token).post("/api/payments/", {"order_uuid": order["order_uuid"],
                                                              "payment_method": "sandbox"})
    assert (foreign.status, foreign.json["error"]) == (404, "order_not_found")
    by_seller = pay.api(seller.token).post("/api/payments/", {"order_uuid": order["order_uuid"],
                                                              "payment_method": "sandbox"})
    assert (by_seller.status, by_seller.json["error"]) == (403, "not_order_buyer")
    paid = new_order(pay, buyer, seller)
    force_status(pay, paid["order_uuid"], "cancelled")
    not_pending = api.post("/api/payments/", {"order_uuid": paid["order_uuid"], "payment_method": "sandbox"})
    assert (not_pending.status, not_pending.json["error"]) == (409, "order_not_payable")
    assert payments_of(pay, order["order_uuid"]) == [] and payments_of(pay, paid["order_uuid"]) == []


def test_a_second_payment_while_one_is_in_flight_is_409(pay, buyer, seller):
    order = new_order(pay, buyer, seller, price="100.66", quantity=1)  # .66: the sandbox never answers
    first = start_payment(pay, buyer, order)
    wait_payment(pay, buyer, first["payment_uuid"], "processing")
    body = {"order_uuid": order["order_uuid"], "payment_method": "sandbox"}
    second = pay.api(buyer.token).post("/api/payments/", body)
    assert second.status == 409 and second.json["details"]["status"] == "processing"
    cancelled = pay.api(buyer.token).post(f"/api/payments/{first['payment_uuid']}/cancel/", {})
    assert cancelled.status == 200 and cancelled.json["status"] == "cancelled"
    assert pay.api(buyer.token).post(f"/api/payments/{first['payment_uuid']}/cancel/", {}).status == 409
    assert start_payment(pay, buyer, order)["status"] == "pending"  # the order is free again


def test_others_cannot_see_or_cancel_my_payment(pay, buyer, seller, stranger):
    payment = start_payment(pay, buyer, new_order(pay, buyer, seller))
    path = f"/api/payments/{payment['payment_uuid']}/"
    assert pay.api(stranger.token).get(path).status == 404
    assert pay.api(stranger.token).post(path + "cancel/", {}).status == 404
    assert pay.api(stranger.token).get("/api/payments/").json["count"] == 0
    assert pay.api(buyer.token).get("/api/payments/?status=pending").json["count"] in (0, 1)


def test_ten_concurrent_payments_for_one_order_create_one(pay, buyer, seller):
    order = new_order(pay, buyer, seller)
    api = pay.api(buyer.token)
    body = {"order_uuid": order["order_uuid"], "payment_method": "sandbox"}
    with ThreadPoolExecutor(max_workers=10) as threads:
        replies = list(threads.map(lambda _: api.post("/api/payments/", body), range(10)))
    statuses = sorted(r.status for r in replies)
    assert statuses == [201] + [409] * 9, [r.json for r in replies]
    [winner] = [r.json for r in replies if r.status == 201]
    wait_payment(pay, buyer, winner["payment_uuid"], "succeeded")
    stays(lambda: [p.status for p in payments_of(pay, order["order_uuid"])] == [PaymentStatus.SUCCEEDED], 0.5)


def _callback(pay, payment: dict, secret_ok: bool = True) -> tuple[bytes, dict]:
    sandbox = SandboxProvider(pay.settings.replace(sandbox_secret=pay.settings.sandbox_secret if secret_ok else "x"))
    raw = sandbox.callback_body(payment["payment_data"]["provider_reference"], Decimal(payment["amount"]), "CNY")
    return raw, {SIGNATURE_HEADER: sandbox.sign(raw)}


def test_forged_and_replayed_callbacks_change_nothing(pay, buyer, seller):
    order = new_order(pay, buyer, seller)
    payment = wait_payment(pay, buyer, start_payment(pay, buyer, order)["payment_uuid"], "succeeded")
    gateway = pay.api()
    raw, headers = _callback(pay, payment, secret_ok=False)
    forged = gateway.post("/api/payments/callback/sandbox/", raw=raw, headers=headers)
    assert (forged.status, forged.json["error"]) == (401, "invalid_signature")
    unsigned = gateway.post("/api/payments/callback/sandbox/", raw=raw)
    assert unsigned.status == 401
    raw, headers = _callback(pay, payment)
    tampered = gateway.post("/api/payments/callback/sandbox/", raw=raw.replace(b"succeeded", b"declined"),
                            headers=headers)
    assert tampered.status == 401
    replay = gateway.post("/api/payments/callback/sandbox/", raw=raw, headers=headers)
    assert replay.status == 200 and replay.json == {"received": True, "duplicate": True}
    assert gateway.post("/api/payments/callback/paypal/", raw=raw, headers=headers).status == 404
    with pay.apps["payments"].app_context():
        assert db.session.scalar(sa.select(sa.func.count()).select_from(PaymentCallback)) == 1
    assert pay.api(buyer.token).get(f"/api/payments/{payment['payment_uuid']}/").json["status"] == "succeeded"
    assert json.loads(raw)["status"] == "succeeded"


def test_non_admins_are_refused_on_risk_endpoints(pay, buyer):
    api = pay.api(buyer.token)
    for path in ("/api/risk/assessments/", "/api/risk/policies/", f"/api/risk/assessments/{uuid.uuid4()}/"):
        reply = api.get(path)
        assert (reply.status, reply.json["error"]) == (403, "admin_required"), path
    assert api.post("/api/risk/policies/", {"name": "x"}).status == 403
    assert api.post(f"/api/risk/assessments/{uuid.uuid4()}/approve/", {}).status == 403
    assert api.request("PATCH", f"/api/risk/policies/{uuid.uuid4()}/", {"weight": 1}).status == 403

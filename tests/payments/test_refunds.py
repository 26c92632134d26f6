"""Refunds through the gateway: partial and full refunds, refusals, cancelling a paid order, and bad
requests, on the sandbox provider with a real worker and Redis."""
from __future__ import annotations

import uuid
from decimal import Decimal

import sqlalchemy as sa

from models import Payment, Refund, db
from tests.payments.conftest import (
    inbox_about, new_order, order_status, paid_order, refunds_of, start_payment, wait_payment, wait_refund,
)
from tests.support.waiting import wait_for


def refund(stack, user, payment_uuid: str, body: dict | None = None, **kwargs):
    return stack.api(user.token).post(f"/api/payments/{payment_uuid}/refund/", {} if body is None else body,
                                      **kwargs)


def payment_of(stack, user, payment_uuid: str) -> dict:
    return stack.api(user.token).get(f"/api/payments/{payment_uuid}/").json


def reserved(stack, payment_uuid: str) -> tuple[Decimal, Decimal, int]:
    """(refund_reserved, refunded_amount, number of refund rows) of a payment, from its database."""
    with stack.apps["payments"].app_context():
        payment = db.session.scalars(sa.select(Payment).where(Payment.payment_uuid == uuid.UUID(payment_uuid))).one()
        count = db.session.scalar(sa.select(sa.func.count()).where(Refund.payment_id == payment.id))
        return payment.refund_reserved, payment.refunded_amount, count


def test_partial_refunds_up_to_the_captured_amount(pay, buyer, seller):
    order, payment = paid_order(pay, buyer, seller, price="100.00")
    pid = payment["payment_uuid"]
    first = refund(pay, buyer, pid, {"amount": "30.10", "reason": "one cup broke"})
    assert first.status == 202, first.json
    assert {k: first.json[k] for k in ("payment_uuid", "amount", "currency", "reason", "status")} == {
        "payment_uuid": pid, "amount": "30.10", "currency": "CNY", "reason": "one cup broke", "status": "pending"}
    assert first.json["refund_uuid"] and first.json["created_at"]
    wait_refund(pay, buyer, pid, first.json["refund_uuid"], "succeeded")
    partial = wait_payment(pay, buyer, pid, "partially_refunded")
    assert (partial["refunded_amount"], partial["refundable_amount"]) == ("30.10", "69.90")
    assert order_status(pay, buyer, order["order_uuid"]) == "paid"  # a partial refund leaves the order alone

    too_much = refund(pay, buyer, pid, {"amount": "69.91"})
    assert (too_much.status, too_much.json["error"]) == (422, "refund_exceeds_remainder")
    assert too_much.json["details"]["remainder"] == "69.90"
    assert reserved(pay, pid) == (Decimal("30.10"), Decimal("30.10"), 1)  # nothing changed

    rest = refund(pay, buyer, pid, {"amount": "69.90"})
    assert rest.status == 202, rest.json
    wait_refund(pay, buyer, pid, rest.json["refund_uuid"], "succeeded")
    done = wait_payment(pay, buyer, pid, "refunded")
    assert (done["refunded_amount"], done["refundable_amount"]) == ("100.00", "0.00")
    assert [r["refund_uuid"] for r in refunds_of(pay, buyer, pid)] == [rest.json["refund_uuid"],
                                                                        first.json["refund_uuid"]]
    # Refunded in full: the paid order is cancelled, and both parties hear of each refund.
    wait_for(lambda: order_status(pay, buyer, order["order_uuid"]) == "cancelled", what="the order cancelled")
    assert pay.api(buyer.token).get(f"/api/orders/{order['order_uuid']}/").json["cancel_reason"] == "refunded"
    for person in (buyer, seller):
        told = wait_for(lambda: inbox_about(pay, person, rest.json["refund_uuid"]), what="told of the refund")
        assert told[0]["type"] == "transaction" and "69.90" in told[0]["content"]
    again = refund(pay, buyer, pid)
    assert (again.status, again.json["error"], again.json["details"]["status"]) == (
        409, "payment_not_refundable", "refunded")


def test_cents_add_up_exactly(pay, buyer, seller):
    """0.10 + 0.20 is 0.30: no binary rounding refuses the last cent (SQLite computes NUMERIC as REAL)."""
    _, payment = paid_order(pay, buyer, seller, price="0.30")
    pid = payment["payment_uuid"]
    for amount in ("0.10", "0.20"):
        reply = refund(pay, buyer, pid, {"amount": amount})
        assert reply.status == 202, reply.json
        wait_refund(pay, buyer, pid, reply.json["refund_uuid"], "succeeded")
    assert wait_payment(pay, buyer, pid, "refunded")["refunded_amount"] == "0.30"
    assert reserved(pay, pid) == (Decimal("0.30"), Decimal("0.30"), 2)


def test_a_refused_refund_fails_and_gives_its_amount_back(pay, buyer, seller):
    _, payment = paid_order(pay, buyer, seller, price="100.00")
    pid = payment["payment_uuid"]
    refused = refund(pay, buyer, pid, {"amount": "10.31"})  # the sandbox refuses amounts ending in .31
    assert refused.status == 202
    failed = wait_refund(pay, buyer, pid, refused.json["refund_uuid"], "failed")
    assert failed["failure_reason"] == "sandbox_refund_refused"
    after = payment_of(pay, buyer, pid)
    assert (after["status"], after["refundable_amount"], after["refunded_amount"]) == ("succeeded", "100.00", "0.00")
    assert reserved(pay, pid) == (Decimal("0.00"), Decimal("0.00"), 1)
    everything = refund(pay, buyer, pid)  # no amount: all that is left
    assert (everything.status, everything.json["amount"]) == (202, "100.00")
    wait_payment(pay, buyer, pid, "refunded")


def test_cancelling_a_paid_order_refunds_it_then_cancels_it(pay, worker, buyer, seller):
    order, payment = paid_order(pay, buyer, seller, price="88.00")
    path = f"/api/orders/{order['order_uuid']}/cancel/"
    reply = pay.api(buyer.token).post(path, {"reason": "changed my mind"})
    assert (reply.status, reply.json["status"]) == (202, "paid")
    wait_payment(pay, buyer, payment["payment_uuid"], "refunded")
    wait_for(lambda: order_status(pay, buyer, order["order_uuid"]) == "cancelled", what="the order cancelled")
    [made] = refunds_of(pay, buyer, payment["payment_uuid"])
    assert (made["amount"], made["reason"], made["status"]) == ("88.00", "changed my mind", "succeeded")
    told = wait_for(lambda: inbox_about(pay, buyer, made["refund_uuid"]), what="the buyer told of the refund")
    assert "88.00" in told[0]["content"]
    wait_for(lambda: any("cancel" in n["title"].lower() or "取消" in n["title"]
                         for n in inbox_about(pay, buyer, order["order_uuid"])), what="the buyer told of the cancel")
    events = pay.api(buyer.token).get(f"/api/orders/{order['order_uuid']}/events/").json["results"]
    assert [(e["from_status"], e["to_status"], e["reason"]) for e in events if e["event_type"] == "cancelled"] == [
        ("paid", "cancelled", "refunded")]
    assert pay.api(buyer.token).post(path, {}).status == 409  # cancelled already
    # The order service's event delivered again: the refund exists once (request key `order-cancel:<order>`).
    event = {"event_id": str(uuid.uuid4()), "type": "refund_workflow.order_cancel",
             "data": {"order_uuid": order["order_uuid"], "actor": str(buyer.uuid), "reason": "again"}}
    assert worker.send_task("payments.refund_cancelled_order", args=[event]).get(timeout=10) is None
    assert len(refunds_of(pay, buyer, payment["payment_uuid"])) == 1


def test_an_admin_may_refund_anyone_s_payment(pay, buyer, seller, admin):
    _, payment = paid_order(pay, buyer, seller, price="20.00")
    reply = refund(pay, admin, payment["payment_uuid"], {"amount": "5.00", "reason": "goodwill"})
    assert reply.status == 202
    wait_refund(pay, buyer, payment["payment_uuid"], reply.json["refund_uuid"], "succeeded")
    assert pay.api(admin.token).get(f"/api/payments/{payment['payment_uuid']}/refunds/").json["count"] == 1


def test_idempotency_key_replays_the_refund(pay, buyer, seller):
    _, payment = paid_order(pay, buyer, seller, price="50.00")
    _, other = paid_order(pay, buyer, seller, price="60.00")
    headers = {"Idempotency-Key": "refund-1"}
    first = refund(pay, buyer, payment["payment_uuid"], {"amount": "10.00"}, headers=headers)
    replay = refund(pay, buyer, payment["payment_uuid"], {"amount": "10.00"}, headers=headers)
    assert (first.status, replay.status, replay.headers.get("Idempotent-Replayed")) == (202, 202, "true")
    assert replay.json["refund_uuid"] == first.json["refund_uuid"]
    reused = refund(pay, buyer, payment["payment_uuid"], {"amount": "11.00"}, headers=headers)
    assert (reused.status, reused.json["error"]) == (422, "idempotency_key_reused")
    elsewhere = refund(pay, buyer, other["payment_uuid"], {"amount": "10.00"}, headers=headers)
    assert elsewhere.status == 202 and elsewhere.json["payment_uuid"] == other["payment_uuid"]
    assert [len(refunds_of(pay, buyer, p["payment_uuid"])) for p in (payment, other)] == [1, 1]


def test_bad_refund_requests(pay, buyer, seller, stranger):
    _, payment = paid_order(pay, buyer, seller, price="40.00")
    pid = payment["payment_uuid"]
    api = pay.api(buyer.token)
    assert api.get(f"/api/payments/{pid}/refund/").status == 405
    assert api.request("PUT", f"/api/payments/{pid}/refunds/", {}).json["error"] == "method_not_allowed"
    missing = refund(pay, buyer, str(uuid.uuid4()), {"amount": "1.00"})
    assert (missing.status, missing.json["error"]) == (404, "payment_not_found")
    foreign = refund(pay, stranger, pid, {"amount": "1.00"})
    assert (foreign.status, foreign.json["error"]) == (404, "payment_not_found")
    assert pay.api(stranger.token).get(f"/api/payments/{pid}/refunds/").status == 404
    assert refund(pay, seller, pid, {"amount": "1.00"}).status == 404  # the seller is not the payer
    for amount, field_error in (("0", "range"), ("-5.00", "range"), ("1.001", "places"), ("abc", "invalid"),
                                (True, "invalid")):
        bad = refund(pay, buyer, pid, {"amount": amount})
        assert (bad.status, bad.json["error"]) == (422, "validation_failed"), amount
        assert bad.json["details"]["amount"] and bad.json["details"]["remainder"] == "40.00", field_error
    unknown = refund(pay, buyer, pid, {"amount": "1.00", "currency": "USD"})
    assert unknown.status == 422 and "currency" in unknown.json["details"]
    over = refund(pay, buyer, pid, {"amount": "40.01"})
    assert (over.status, over.json["details"]["remainder"]) == (422, "40.00")
    assert api.post(f"/api/payments/{pid}/refund/", raw=b"{not json").status == 400
    assert reserved(pay, pid) == (Decimal("0.00"), Decimal("0.00"), 0)

    uncaptured = new_order(pay, buyer, seller, price="100.66", quantity=1)  # .66: the sandbox never answers
    processing = wait_payment(pay, buyer, start_payment(pay, buyer, uncaptured)["payment_uuid"], "processing")
    conflict = refund(pay, buyer, processing["payment_uuid"], {"amount": "1.00"})
    assert (conflict.status, conflict.json["error"], conflict.json["details"]["status"]) == (
        409, "payment_not_refundable", "processing")
    assert api.get(f"/api/payments/{processing['payment_uuid']}/refunds/").json == {
        "count": 0, "next": None, "previous": None, "results": []}

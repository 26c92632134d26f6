"""Refunds through the gateway: partial and full refunds (by the seller or an admin), refusals,
cancelling a paid order (the buyer's way to a refund), and bad requests, on the sandbox provider with
a real worker and Redis."""
from __future__ import annotations

import json
import uuid
from decimal import Decimal

import sqlalchemy as sa

from api.common.fields import Money
from api.orders import create_app as create_orders_app
from api.payments import create_app as create_payments_app
from models import OrderOutbox, Payment, PaymentOutbox, Refund, db
from tasks.orders.actions import REFUND_ON_CANCEL
from tasks.payments import refund_tasks
from tasks.payments.providers import RefundOutcome, RefundResult
from tasks.payments.providers.sandbox import SandboxProvider
from tests.payments.conftest import (
    inbox_about, new_order, order_status, paid_order, refunds_of, start_payment, wait_payment, wait_refund,
)
from tests.support.servers import closed_port
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
    first = refund(pay, seller, pid, {"amount": "30.10", "reason": "one cup broke"})
    assert first.status == 202, first.json
    assert {k: first.json[k] for k in ("payment_uuid", "amount", "currency", "reason", "status")} == {
        "payment_uuid": pid, "amount": "30.10", "currency": "CNY", "reason": "one cup broke", "status": "pending"}
    assert first.json["refund_uuid"] and first.json["created_at"]
    wait_refund(pay, buyer, pid, first.json["refund_uuid"], "succeeded")
    partial = wait_payment(pay, buyer, pid, "partially_refunded")
    assert (partial["refunded_amount"], partial["refundable_amount"]) == ("30.10", "69.90")
    assert order_status(pay, buyer, order["order_uuid"]) == "paid"  # a partial refund leaves the order alone

    too_much = refund(pay, seller, pid, {"amount": "69.91"})
    assert (too_much.status, too_much.json["error"]) == (422, "refund_exceeds_remainder")
    assert too_much.json["details"]["remainder"] == "69.90"
    assert reserved(pay, pid) == (Decimal("30.10"), Decimal("30.10"), 1)  # nothing changed

    rest = refund(pay, seller, pid, {"amount": "69.90"})
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
    again = refund(pay, seller, pid)
    assert (again.status, again.json["error"], again.json["details"]["status"]) == (
        409, "payment_not_refundable", "refunded")


def test_cents_add_up_exactly(pay, buyer, seller):
    """0.10 + 0.20 is 0.30: no binary rounding refuses the last cent (SQLite computes NUMERIC as REAL)."""
    _, payment = paid_order(pay, buyer, seller, price="0.30")
    pid = payment["payment_uuid"]
    for amount in ("0.10", "0.20"):
        reply = refund(pay, seller, pid, {"amount": amount})
        assert reply.status == 202, reply.json
        wait_refund(pay, buyer, pid, reply.json["refund_uuid"], "succeeded")
    assert wait_payment(pay, buyer, pid, "refunded")["refunded_amount"] == "0.30"
    assert reserved(pay, pid) == (Decimal("0.30"), Decimal("0.30"), 2)


def test_a_refused_refund_fails_and_gives_its_amount_back(pay, buyer, seller):
    _, payment = paid_order(pay, buyer, seller, price="100.00")
    pid = payment["payment_uuid"]
    refused = refund(pay, seller, pid, {"amount": "10.31"})  # the sandbox refuses amounts ending in .31
    assert refused.status == 202
    failed = wait_refund(pay, buyer, pid, refused.json["refund_uuid"], "failed")
    assert failed["failure_reason"] == "sandbox_refund_refused"
    after = payment_of(pay, buyer, pid)
    assert (after["status"], after["refundable_amount"], after["refunded_amount"]) == ("succeeded", "100.00", "0.00")
    assert reserved(pay, pid) == (Decimal("0.00"), Decimal("0.00"), 1)
    told = wait_for(lambda: inbox_about(pay, buyer, refused.json["refund_uuid"]),
                    what="the buyer told of the failure")
    assert (told[0]["title"], "10.31" in told[0]["content"]) == ("退款失败", True)
    everything = refund(pay, seller, pid)  # no amount: all that is left
    assert (everything.status, everything.json["amount"]) == (202, "100.00")
    wait_payment(pay, buyer, pid, "refunded")


def offline(stack, service: str, create_app):
    """The service's app with its broker away: what it commits stays in its outbox, unpublished."""
    return create_app(stack.apps[service].config["CFMP_SETTINGS"].replace(
        broker_url=f"redis://127.0.0.1:{closed_port()}/0"))


def cancel_offline(stack, buyer, order: dict, body: dict | None = None) -> dict:
    """Cancel a paid order through an order service whose broker is away: the refund is asked for
    (audit entry and outbox event committed) but nobody hears of it yet. Returns the event."""
    offline_orders = offline(stack, "orders", create_orders_app).test_client()
    reply = offline_orders.post(f"/api/orders/{order['order_uuid']}/cancel/", json=body or {},
                         headers={"Authorization": f"Bearer {buyer.token}"})
    assert (reply.status_code, reply.get_json()["status"]) == (202, "paid"), reply.get_json()
    [event] = cancel_events(stack, order["order_uuid"])
    return event


def cancel_events(stack, order_uuid: str) -> list[dict]:
    with stack.orders_app.app_context():
        return [json.loads(row.payload) for row in db.session.scalars(
            sa.select(OrderOutbox).where(OrderOutbox.aggregate_uuid == uuid.UUID(order_uuid),
                                         OrderOutbox.event_type == REFUND_ON_CANCEL)
            .order_by(OrderOutbox.id))]


def test_cancelling_a_paid_order_refunds_it_then_cancels_it(pay, worker, buyer, seller):
    order, payment = paid_order(pay, buyer, seller, price="88.00")
    path = f"/api/orders/{order['order_uuid']}/cancel/"
    event = cancel_offline(pay, buyer, order, {"reason": "changed my mind"})
    # While the refund is asked for, the buyer cannot confirm receipt (and keep goods and money); a
    # second cancel changes nothing (no second request).
    early = pay.api(buyer.token).post(f"/api/orders/{order['order_uuid']}/complete/", {})
    assert (early.status, early.json["error"]) == (409, "refund_in_progress")
    assert pay.api(buyer.token).post(path, {}).status == 202
    assert len(cancel_events(pay, order["order_uuid"])) == 1
    # The event delivered twice, each delivery its own transaction, while the refund the first made
    # is still pending (the payments broker is away, so its workflow has not started): the second
    # finds it by its request key and names the same refund; nothing more is reserved.
    offline_payments, made_by = offline(pay, "payments", create_payments_app), []
    for _ in range(2):
        with offline_payments.app_context():
            made_by.append(refund_tasks.refund_cancelled_order.run(event))
        assert [r["status"] for r in refunds_of(pay, buyer, payment["payment_uuid"])] == ["pending"]
    assert made_by[0] is not None and made_by == [made_by[0]] * 2, made_by
    assert reserved(pay, payment["payment_uuid"]) == (Decimal("88.00"), Decimal("0.00"), 1)
    with pay.apps["payments"].app_context():  # its kick-off, published now
        [start] = db.session.scalars(sa.select(PaymentOutbox.payload).where(
            PaymentOutbox.aggregate_uuid == uuid.UUID(made_by[0]))).all()
    worker.send_task("payments.start_refund", args=[json.loads(start)])
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
    assert made["refund_uuid"] == made_by[0]
    cancel_id = event["data"]["cancel_id"]
    assert refund_key(pay, made["refund_uuid"]) == f"order-cancel:{order['order_uuid']}:{cancel_id}"
    assert pay.api(buyer.token).post(path, {}).status == 409  # cancelled already
    done = pay.api(buyer.token).post(f"/api/orders/{order['order_uuid']}/complete/", {})
    assert (done.status, done.json["error"]) == (409, "order_state_conflict")


def refund_key(stack, refund_uuid: str) -> str:
    with stack.apps["payments"].app_context():
        return db.session.scalar(sa.select(Refund.request_key)
                                 .where(Refund.refund_uuid == uuid.UUID(refund_uuid)))


def order_events(stack, buyer, order_uuid: str) -> list[tuple[str, str]]:
    results = stack.api(buyer.token).get(f"/api/orders/{order_uuid}/events/?page_size=100").json["results"]
    return [(e["event_type"], e["to_status"]) for e in results]


def test_a_cancel_whose_refund_failed_can_be_retried_and_the_buyer_is_told(pay, buyer, seller, monkeypatch):
    """The provider refuses the first refund: the buyer hears of it, the order is paid again, and a
    new cancel is a new refund attempt (not the failed one again), which goes through."""
    answer, asked = SandboxProvider.refund, []

    def refuses_once(self, request):
        asked.append(request.refund_uuid)
        if len(asked) == 1:
            return RefundResult(RefundOutcome.FAILED, "", "sandbox_refund_refused")
        return answer(self, request)

    monkeypatch.setattr(SandboxProvider, "refund", refuses_once)
    order, payment = paid_order(pay, buyer, seller, price="64.00")
    pid, path = payment["payment_uuid"], f"/api/orders/{order['order_uuid']}/cancel/"
    assert pay.api(buyer.token).post(path, {"reason": "too late"}).status == 202
    [failed] = wait_for(lambda: [r for r in refunds_of(pay, buyer, pid) if r["status"] == "failed"],
                        what="the refund failed")
    told = wait_for(lambda: inbox_about(pay, buyer, failed["refund_uuid"]),
                    what="the buyer told of the failure")
    assert told[0]["title"] == "退款失败" and "64.00" in told[0]["content"]
    wait_for(lambda: order_events(pay, buyer, order["order_uuid"])[-1] == ("refund_failed", "paid"),
             what="the order service told of the failure")
    assert order_status(pay, buyer, order["order_uuid"]) == "paid"
    assert payment_of(pay, buyer, pid)["refundable_amount"] == "64.00"  # the amount was released
    again = pay.api(buyer.token).post(path, {"reason": "too late"})
    assert (again.status, again.json["status"]) == (202, "paid")
    wait_payment(pay, buyer, pid, "refunded")
    wait_for(lambda: order_status(pay, buyer, order["order_uuid"]) == "cancelled", what="the order cancelled")
    made = refunds_of(pay, buyer, pid)
    assert [(r["status"], r["amount"]) for r in made] == [("succeeded", "64.00"), ("failed", "64.00")]
    assert asked == [made[1]["refund_uuid"], made[0]["refund_uuid"]]  # two attempts, two refunds
    kinds = [kind for kind, _ in order_events(pay, buyer, order["order_uuid"]) if kind.startswith("refund")]
    assert kinds == ["refund_requested", "refund_failed", "refund_requested"]


def test_after_a_failed_cancel_refund_the_order_may_be_completed(pay, buyer, seller):
    order, payment = paid_order(pay, buyer, seller, price="20.31")  # the sandbox refuses refunds of .31
    assert pay.api(buyer.token).post(f"/api/orders/{order['order_uuid']}/cancel/", {}).status == 202
    wait_for(lambda: order_events(pay, buyer, order["order_uuid"])[-1] == ("refund_failed", "paid"),
             what="the order service told of the failure")
    done = pay.api(buyer.token).post(f"/api/orders/{order['order_uuid']}/complete/", {})
    assert (done.status, done.json["status"]) == (200, "completed")
    assert [r["status"] for r in refunds_of(pay, buyer, payment["payment_uuid"])] == ["failed"]


def test_an_admin_may_refund_anyone_s_payment(pay, buyer, seller, admin):
    _, payment = paid_order(pay, buyer, seller, price="20.00")
    reply = refund(pay, admin, payment["payment_uuid"], {"amount": "5.00", "reason": "goodwill"})
    assert reply.status == 202
    wait_refund(pay, buyer, payment["payment_uuid"], reply.json["refund_uuid"], "succeeded")
    for person in (admin, buyer, seller):  # the payer and the seller see the refunds too
        listed = pay.api(person.token).get(f"/api/payments/{payment['payment_uuid']}/refunds/").json
        assert listed["count"] == 1


def test_idempotency_key_replays_the_refund(pay, buyer, seller):
    _, payment = paid_order(pay, buyer, seller, price="50.00")
    _, other = paid_order(pay, buyer, seller, price="60.00")
    headers = {"Idempotency-Key": "refund-1"}
    first = refund(pay, seller, payment["payment_uuid"], {"amount": "10.00"}, headers=headers)
    replay = refund(pay, seller, payment["payment_uuid"], {"amount": "10.00"}, headers=headers)
    assert (first.status, replay.status, replay.headers.get("Idempotent-Replayed")) == (202, 202, "true")
    assert replay.json["refund_uuid"] == first.json["refund_uuid"]
    reused = refund(pay, seller, payment["payment_uuid"], {"amount": "11.00"}, headers=headers)
    assert (reused.status, reused.json["error"]) == (422, "idempotency_key_reused")
    elsewhere = refund(pay, seller, other["payment_uuid"], {"amount": "10.00"}, headers=headers)
    assert elsewhere.status == 202 and elsewhere.json["payment_uuid"] == other["payment_uuid"]
    assert [len(refunds_of(pay, buyer, p["payment_uuid"])) for p in (payment, other)] == [1, 1]


def test_only_the_seller_or_an_admin_refunds_the_buyer_cancels_instead(pay, buyer, seller, stranger):
    """A payer who could refund their own payment would get the money back and keep the goods (even
    after completing the order): the buyer is refused (403, naming the way: cancel the order)."""
    order, payment = paid_order(pay, buyer, seller, price="40.00")
    pid = payment["payment_uuid"]
    for body in ({}, {"amount": "1.00"}):
        mine = refund(pay, buyer, pid, body)
        assert (mine.status, mine.json["error"]) == (403, "refund_by_seller_only"), mine.json
        assert mine.json["details"]["cancel"] == f"/api/orders/{order['order_uuid']}/cancel/"
    assert pay.api(buyer.token).post(f"/api/orders/{order['order_uuid']}/complete/", {}).status == 200
    assert refund(pay, buyer, pid).status == 403  # completed: no money back without the goods
    foreign = refund(pay, stranger, pid, {"amount": "1.00"})
    assert (foreign.status, foreign.json["error"]) == (404, "payment_not_found")
    assert reserved(pay, pid) == (Decimal("0.00"), Decimal("0.00"), 0)
    for person in (buyer, seller):
        assert pay.api(person.token).get(f"/api/payments/{pid}/refunds/").json["count"] == 0
    assert pay.api(stranger.token).get(f"/api/payments/{pid}/refunds/").status == 404


def test_bad_refund_requests(pay, buyer, seller, stranger):
    _, payment = paid_order(pay, buyer, seller, price="40.00")
    pid = payment["payment_uuid"]
    api = pay.api(seller.token)
    assert api.get(f"/api/payments/{pid}/refund/").status == 405
    assert api.request("PUT", f"/api/payments/{pid}/refunds/", {}).json["error"] == "method_not_allowed"
    missing = refund(pay, seller, str(uuid.uuid4()), {"amount": "1.00"})
    assert (missing.status, missing.json["error"]) == (404, "payment_not_found")
    foreign = refund(pay, stranger, pid, {"amount": "1.00"})
    assert (foreign.status, foreign.json["error"]) == (404, "payment_not_found")
    assert pay.api(stranger.token).get(f"/api/payments/{pid}/refunds/").status == 404
    for amount, code in (("0", "range"), (-5, "range"), ("1.001", "places"), ("abc", "invalid"),
                         (True, "invalid")):
        bad = refund(pay, seller, pid, {"amount": amount})
        assert (bad.status, bad.json["error"]) == (422, "validation_failed"), amount
        expected = {"amount": [Money.default_error_messages[code]], "remainder": "40.00"}
        assert bad.json["details"] == expected, amount
    unknown = refund(pay, seller, pid, {"amount": "1.00", "currency": "USD"})
    assert unknown.status == 422 and "currency" in unknown.json["details"]
    over = refund(pay, seller, pid, {"amount": "40.01"})
    assert (over.status, over.json["details"]["remainder"]) == (422, "40.00")
    assert api.post(f"/api/payments/{pid}/refund/", raw=b"{not json").status == 400
    assert reserved(pay, pid) == (Decimal("0.00"), Decimal("0.00"), 0)

    uncaptured = new_order(pay, buyer, seller, price="100.66", quantity=1)  # .66: the sandbox never answers
    processing = wait_payment(pay, buyer, start_payment(pay, buyer, uncaptured)["payment_uuid"], "processing")
    conflict = refund(pay, seller, processing["payment_uuid"], {"amount": "1.00"})
    assert (conflict.status, conflict.json["error"], conflict.json["details"]["status"]) == (
        409, "payment_not_refundable", "processing")
    assert api.get(f"/api/payments/{processing['payment_uuid']}/refunds/").json == {
        "count": 0, "next": None, "previous": None, "results": []}

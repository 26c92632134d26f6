"""Paying orders end to end: gateway → payment service → risk chord → sandbox → signed callback over
HTTP through the gateway → capture → order paid, on a real worker and Redis."""
from __future__ import annotations

import json
import uuid

import sqlalchemy as sa

from models import PaymentCallback, PaymentOutbox, db
from tests.payments.conftest import (
    assessment_of, new_order, order_status, policy_uuid, start_payment, wait_payment,
)
from tests.support.waiting import wait_for


def notified(stack, user, payment_uuid: str) -> dict | None:
    """The user's inbox notification about this payment, read through the gateway."""
    inbox = stack.api(user.token).get("/api/notifications/?page_size=100").json["results"]
    return next((n for n in inbox if n["related_id"] == payment_uuid), None)


def events_of(stack, payment_uuid: str) -> list[str]:
    with stack.apps["payments"].app_context():
        return list(db.session.scalars(sa.select(PaymentOutbox.event_type).where(
            PaymentOutbox.aggregate_uuid == uuid.UUID(payment_uuid)).order_by(PaymentOutbox.id)))


def test_a_sandbox_payment_pays_the_order(pay, buyer, seller):
    order = new_order(pay, buyer, seller)
    payment = start_payment(pay, buyer, order)
    assert (payment["status"], payment["amount"], payment["payment_method"]) == ("pending", "199.00", "sandbox")
    done = wait_payment(pay, buyer, payment["payment_uuid"], "succeeded")
    assert done["paid_at"] and done["payment_data"]["provider_reference"].startswith("sbx_")
    assert done["payment_data"]["idempotency_key"] == f"cfmp:charge:{payment['payment_uuid']}"
    assessment = assessment_of(pay, payment["payment_uuid"])
    assert (assessment.decision.value, assessment.level.value, assessment.score) == ("allow", "low", 0)
    assert len(assessment.reasons["rules"]) == 5 and assessment.reasons["not_answered"] == []
    from tests.support.waiting import wait_for
    wait_for(lambda: order_status(pay, buyer, order["order_uuid"]) == "paid", what="the order paid")
    paid = pay.api(buyer.token).get(f"/api/orders/{order['order_uuid']}/").json
    assert paid["payment_method"] == "sandbox"
    with pay.apps["payments"].app_context():  # the callback really arrived, signed, over HTTP
        [callback] = db.session.scalars(sa.select(PaymentCallback)).all()
        assert callback.outcome == "succeeded"
    assert events_of(pay, payment["payment_uuid"]) == [
        "payment_workflow.start", "payment_workflow.capture", "payment.succeeded"]


def test_a_declined_charge_fails_and_the_order_stays_payable(pay, buyer, seller):
    order = new_order(pay, buyer, seller, price="100.13", quantity=1)
    payment = start_payment(pay, buyer, order)
    failed = wait_payment(pay, buyer, payment["payment_uuid"], "failed")
    assert failed["failure_reason"] == "payment_declined"
    assert order_status(pay, buyer, order["order_uuid"]) == "pending_payment"
    assert events_of(pay, payment["payment_uuid"])[-1] == "payment.failed"
    retry = start_payment(pay, buyer, order)  # a failed payment releases the order
    assert retry["status"] == "pending"
    told = wait_for(lambda: notified(pay, buyer, payment["payment_uuid"]), what="the buyer told of the failure")
    assert told["type"] == "transaction" and told["related_data"]["reason"] == "payment_declined"


def test_a_deny_listed_buyer_is_blocked(pay, buyer, seller, admin):
    target = policy_uuid(pay, admin, "deny_list")
    edited = pay.api(admin.token).request("PATCH", f"/api/risk/policies/{target}/",
                                          {"params": {"user_uuids": [str(buyer.uuid)]}})
    assert edited.status == 200 and edited.json["params"] == {"user_uuids": [str(buyer.uuid)]}
    order = new_order(pay, buyer, seller)
    payment = start_payment(pay, buyer, order)
    failed = wait_payment(pay, buyer, payment["payment_uuid"], "failed")
    assert failed["failure_reason"] == "risk_blocked"
    assessment = assessment_of(pay, payment["payment_uuid"])
    assert (assessment.decision.value, assessment.level.value, assessment.score) == ("block", "critical", 100)
    assert order_status(pay, buyer, order["order_uuid"]) == "pending_payment"


def _held(pay, buyer, seller, admin) -> tuple[dict, dict, dict]:
    order = new_order(pay, buyer, seller, price="6000.00", quantity=1)
    payment = start_payment(pay, buyer, order)
    wait_payment(pay, buyer, payment["payment_uuid"], "review")
    listed = pay.api(admin.token).get("/api/risk/assessments/?decision=review&level=medium").json
    [assessment] = [a for a in listed["results"] if a["payment_uuid"] == payment["payment_uuid"]]
    assert assessment["review_status"] == "pending" and assessment["score"] == 40
    assert [r["policy"] for r in assessment["reasons"]["rules"] if r["triggered"]] == ["large_amount"]
    return order, payment, assessment


def test_a_held_payment_approved_by_an_admin_pays_the_order(pay, buyer, seller, admin):
    order, payment, assessment = _held(pay, buyer, seller, admin)
    wait_for(lambda: notified(pay, buyer, payment["payment_uuid"]), what="the buyer told of the review")
    approved = pay.api(admin.token).post(f"/api/risk/assessments/{assessment['assessment_uuid']}/approve/", {})
    assert approved.status == 200 and approved.json["review_status"] == "approved"
    assert approved.json["reviewed_by"] == str(admin.uuid)
    wait_payment(pay, buyer, payment["payment_uuid"], "succeeded")
    wait_for(lambda: order_status(pay, buyer, order["order_uuid"]) == "paid", what="the order paid")
    again = pay.api(admin.token).post(f"/api/risk/assessments/{assessment['assessment_uuid']}/reject/", {})
    assert again.status == 409 and again.json["error"] == "review_state_conflict"


def test_a_held_payment_rejected_by_an_admin_fails(pay, buyer, seller, admin):
    order, payment, assessment = _held(pay, buyer, seller, admin)
    rejected = pay.api(admin.token).post(f"/api/risk/assessments/{assessment['assessment_uuid']}/reject/", {})
    assert rejected.status == 200 and rejected.json["review_status"] == "rejected"
    failed = pay.api(buyer.token).get(f"/api/payments/{payment['payment_uuid']}/").json
    assert (failed["status"], failed["failure_reason"]) == ("failed", "risk_rejected")
    assert order_status(pay, buyer, order["order_uuid"]) == "pending_payment"
    detail = pay.api(admin.token).get(f"/api/risk/assessments/{assessment['assessment_uuid']}/").json
    assert detail["review_status"] == "rejected" and json.dumps(detail)

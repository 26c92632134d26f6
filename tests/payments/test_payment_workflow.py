"""Exactly-once steps, the timeout race, broken rules and the beat sweeps, on a real worker."""
from __future__ import annotations

import datetime as dt
import uuid
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal

import pytest
import sqlalchemy as sa

from api.payments import create_app
from models import Payment, PaymentOutbox, RiskRuleResult, SecurityPolicy, db, utcnow
from tasks.errors import PermanentError
from tasks.payments.providers.sandbox import SIGNATURE_HEADER, SandboxProvider
from tests.factories import force_status
from tests.payments.conftest import (
    assessment_of, new_order, order_status, set_params, start_payment, wait_payment,
)
from tests.support.servers import closed_port
from tests.support.waiting import stays, wait_for


def event_types(stack, payment_uuid: str) -> list[str]:
    with stack.apps["payments"].app_context():
        return list(db.session.scalars(sa.select(PaymentOutbox.event_type).where(
            PaymentOutbox.aggregate_uuid == uuid.UUID(payment_uuid)).order_by(PaymentOutbox.id)))


def payment_row(stack, payment_uuid: str) -> Payment:
    with stack.apps["payments"].app_context():
        row = db.session.scalars(sa.select(Payment).where(Payment.payment_uuid == uuid.UUID(payment_uuid))).one()
        db.session.expunge(row)
        return row


def silent_payment(pay, buyer, seller) -> tuple[dict, dict]:
    """A payment the sandbox accepted but never calls back about (amount ending in .66)."""
    order = new_order(pay, buyer, seller, price="100.66", quantity=1)
    return order, wait_payment(pay, buyer, start_payment(pay, buyer, order)["payment_uuid"], "processing")


def signed_success(pay, payment: dict) -> tuple[bytes, dict]:
    sandbox = SandboxProvider(pay.settings)
    raw = sandbox.callback_body(payment["payment_data"]["provider_reference"], Decimal(payment["amount"]), "CNY")
    return raw, {SIGNATURE_HEADER: sandbox.sign(raw)}


def test_capture_and_the_callback_twice_have_one_effect(pay, worker, buyer, seller):
    order, payment = silent_payment(pay, buyer, seller)
    raw, headers = signed_success(pay, payment)
    with ThreadPoolExecutor(max_workers=2) as threads:
        replies = list(threads.map(lambda _: pay.api().post("/api/payments/callback/sandbox/", raw=raw,
                                                            headers=headers), range(2)))
    assert sorted(r.json["duplicate"] for r in replies) == [False, True]
    wait_payment(pay, buyer, payment["payment_uuid"], "succeeded")
    wait_for(lambda: order_status(pay, buyer, order["order_uuid"]) == "paid", what="the order paid")
    payment_id = payment_row(pay, payment["payment_uuid"]).id
    twice = [worker.send_task("payments.capture", args=[payment_id]) for _ in range(2)]
    assert [r.get(timeout=10) for r in twice] == [True, True]
    assert event_types(pay, payment["payment_uuid"]).count("payment.succeeded") == 1
    assert event_types(pay, payment["payment_uuid"]).count("payment_workflow.capture") == 1
    assert worker.send_task("orders.mark_paid", args=[order["order_uuid"], "sandbox", utcnow().isoformat()]).get(
        timeout=10) is True  # a re-run reads "paid", so no refund is flagged
    assert not payment_row(pay, payment["payment_uuid"]).refund_due


def test_money_captured_for_an_order_cancelled_meanwhile_is_flagged_for_refund(pay, buyer, seller):
    order, payment = silent_payment(pay, buyer, seller)
    force_status(pay, order["order_uuid"], "cancelled")  # the timeout sweep won the race
    raw, headers = signed_success(pay, payment)
    assert pay.api().post("/api/payments/callback/sandbox/", raw=raw, headers=headers).status == 200
    wait_for(lambda: payment_row(pay, payment["payment_uuid"]).refund_due, what="refund flagged")
    # ... and refunded automatically right after (tests/payments/test_refund_workflow.py).
    assert payment_row(pay, payment["payment_uuid"]).status.value in ("succeeded", "refunded")
    assert order_status(pay, buyer, order["order_uuid"]) == "cancelled"
    assert event_types(pay, payment["payment_uuid"])[-1] == "payment.refund_required"


def test_a_success_for_a_payment_cancelled_meanwhile_stops_before_the_order(pay, buyer, seller):
    order, payment = silent_payment(pay, buyer, seller)
    assert pay.api(buyer.token).post(f"/api/payments/{payment['payment_uuid']}/cancel/", {}).status == 200
    raw, headers = signed_success(pay, payment)
    assert pay.api().post("/api/payments/callback/sandbox/", raw=raw, headers=headers).status == 200
    wait_for(lambda: payment_row(pay, payment["payment_uuid"]).refund_due, what="refund flagged")
    assert payment_row(pay, payment["payment_uuid"]).status.value == "cancelled"
    stays(lambda: order_status(pay, buyer, order["order_uuid"]) == "pending_payment", duration=0.5)


def test_a_broken_rule_is_not_answered_and_the_rest_decide(pay, buyer, seller, admin):
    pay.api(admin.token).get("/api/risk/policies/")  # seeds the defaults
    set_params(pay, "large_amount", '{"threshold": "not a number"}')
    order = new_order(pay, buyer, seller)
    payment = wait_payment(pay, buyer, start_payment(pay, buyer, order)["payment_uuid"], "succeeded")
    assessment = assessment_of(pay, payment["payment_uuid"])
    assert assessment.reasons["not_answered"] == ["large_amount"]
    assert len(assessment.reasons["rules"]) == 4 and assessment.decision.value == "allow"


def rule_results(stack, payment_id: int) -> dict[str, tuple]:
    with stack.apps["payments"].app_context():
        return {row.policy_name: (row.rule, row.answered, row.triggered, row.score, row.reason)
                for row in db.session.scalars(sa.select(RiskRuleResult).where(RiskRuleResult.payment_id == payment_id))}


def test_risk_steps_run_again_change_nothing(pay, worker, buyer, seller, admin):
    """Every rule task and the aggregate of a decided payment, sent again: one row each, the same answer."""
    pay.api(admin.token).get("/api/risk/policies/")  # seeds the defaults
    order = new_order(pay, buyer, seller, price="6000.00", quantity=1)  # over large_amount: held for review
    payment_uuid = start_payment(pay, buyer, order)["payment_uuid"]
    assessment = wait_for(lambda: assessment_of(pay, payment_uuid), what="the assessment")
    payment_id = payment_row(pay, payment_uuid).id
    stored = rule_results(pay, payment_id)
    assert len(stored) == 5 and stored["large_amount"][1:3] == (True, True) and assessment.score > 0
    with pay.apps["payments"].app_context():
        policies = db.session.execute(sa.select(SecurityPolicy.id, SecurityPolicy.rule)).all()
        db.session.execute(sa.delete(RiskRuleResult).where(RiskRuleResult.payment_id == payment_id,
                                                           RiskRuleResult.policy_name == "large_amount"))
        db.session.commit()
    again = [worker.send_task(f"risk.rule_{rule.value}", args=[payment_id, policy_id]) for policy_id, rule in policies]
    assert sorted(r.get(timeout=10) for r in again) == [False, False, False, False, True]  # only the deleted one
    assert rule_results(pay, payment_id) == stored
    with pytest.raises(PermanentError, match="does not exist"):  # no such policy: a dead letter, no row
        worker.send_task("risk.rule_amount", args=[payment_id, 10**9]).get(timeout=10)
    assert rule_results(pay, payment_id) == stored
    assert worker.send_task("risk.aggregate", args=[payment_id, [policy_id for policy_id, _ in policies]]).get(
        timeout=10) == assessment.id


def test_beat_expires_pending_payments_and_redrives_stalled_ones(pay, worker, settings, buyer, seller):
    """Payments taken while the broker was away stay pending: beat expires the old and re-drives the rest."""
    offline = create_app(pay.apps["payments"].config["CFMP_SETTINGS"].replace(
        broker_url=f"redis://127.0.0.1:{closed_port()}/0")).test_client()
    headers = {"Authorization": f"Bearer {buyer.token}"}
    orders = [new_order(pay, buyer, seller) for _ in range(2)]
    created = [offline.post("/api/payments/", json={"order_uuid": o["order_uuid"], "payment_method": "sandbox"},
                            headers=headers).get_json() for o in orders]
    assert [c["status"] for c in created] == ["pending", "pending"]
    stale, stalled = (uuid.UUID(c["payment_uuid"]) for c in created)
    with pay.apps["payments"].app_context():
        past = utcnow() - dt.timedelta(seconds=settings.payment_redrive_after + 5)
        db.session.execute(sa.update(Payment).where(Payment.payment_uuid == stale).values(expires_at=utcnow()))
        db.session.execute(sa.update(Payment).where(Payment.payment_uuid == stalled).values(created_at=past, updated_at=past))
        db.session.commit()
    assert worker.send_task("payments.expire_pending_payments").get(timeout=10) == 1
    expired = pay.api(buyer.token).get(f"/api/payments/{stale}/").json
    assert (expired["status"], expired["failure_reason"]) == ("expired", "payment_expired")
    assert worker.send_task("payments.redrive_stalled_payments").get(timeout=10) == 1
    assert worker.send_task("payments.redrive_stalled_payments").get(timeout=10) == 0  # not again at once
    wait_payment(pay, buyer, str(stalled), "succeeded")
    wait_for(lambda: order_status(pay, buyer, orders[1]["order_uuid"]) == "paid", what="the re-driven order paid")

"""Beat asks the provider about payments left `processing` (a lost callback, an undecided charge),
and expires payments held for review past their window, on a real worker."""
from __future__ import annotations

import datetime as dt
import uuid

import sqlalchemy as sa

from models import Payment, PaymentOutbox, db, utcnow
from tests.payments.conftest import new_order, order_status, start_payment, wait_payment
from tests.payments.test_payment_flow import _held
from tests.support.waiting import wait_for


def backdate(stack, payment_uuid: str, seconds: float, column: str = "updated_at") -> None:
    with stack.apps["payments"].app_context():
        db.session.execute(sa.update(Payment).where(Payment.payment_uuid == uuid.UUID(payment_uuid))
                           .values({column: utcnow() - dt.timedelta(seconds=seconds)}))
        db.session.commit()


def events_of(stack, payment_uuid: str, event_type: str) -> int:
    with stack.apps["payments"].app_context():
        return db.session.scalar(sa.select(sa.func.count()).select_from(PaymentOutbox).where(
            PaymentOutbox.aggregate_uuid == uuid.UUID(payment_uuid), PaymentOutbox.event_type == event_type))


def reconcile(worker) -> dict:
    return worker.send_task("payments.reconcile_payments").get(timeout=15)


def test_a_lost_callback_is_found_by_asking_the_provider_and_captured_once(pay, worker, settings, buyer, seller):
    order = new_order(pay, buyer, seller, price="100.77", quantity=1)  # .77: succeeds, callback lost
    payment = wait_payment(pay, buyer, start_payment(pay, buyer, order)["payment_uuid"], "processing")
    assert reconcile(worker) == {}  # not processing long enough yet: the callback may still come
    backdate(pay, payment["payment_uuid"], settings.payment_reconcile_after + 5)
    assert reconcile(worker) == {"succeeded": 1}
    wait_payment(pay, buyer, payment["payment_uuid"], "succeeded")
    wait_for(lambda: order_status(pay, buyer, order["order_uuid"]) == "paid", what="the order paid")
    backdate(pay, payment["payment_uuid"], settings.payment_reconcile_after + 5)
    assert reconcile(worker) == {}  # settled: nothing left to ask about
    assert events_of(pay, payment["payment_uuid"], "payment.succeeded") == 1


def test_an_undecided_charge_stays_processing_and_is_asked_again_later(pay, worker, settings, buyer, seller):
    order = new_order(pay, buyer, seller, price="100.66", quantity=1)  # .66: the provider never decides
    payment = wait_payment(pay, buyer, start_payment(pay, buyer, order)["payment_uuid"], "processing")
    backdate(pay, payment["payment_uuid"], settings.payment_reconcile_after + 5)
    assert reconcile(worker) == {"processing": 1}
    assert reconcile(worker) == {}  # asked just now: not again on the very next sweep
    still = pay.api(buyer.token).get(f"/api/payments/{payment['payment_uuid']}/").json
    assert (still["status"], still["failure_reason"]) == ("processing", None)  # never assumed failed
    assert order_status(pay, buyer, order["order_uuid"]) == "pending_payment"


def test_a_processing_payment_does_not_expire(pay, worker, buyer, seller):
    order = new_order(pay, buyer, seller, price="100.66", quantity=1)
    payment = wait_payment(pay, buyer, start_payment(pay, buyer, order)["payment_uuid"], "processing")
    backdate(pay, payment["payment_uuid"], 5, column="expires_at")
    assert worker.send_task("payments.expire_pending_payments").get(timeout=10) == 0
    assert pay.api(buyer.token).get(f"/api/payments/{payment['payment_uuid']}/").json["status"] == "processing"


def test_a_payment_held_for_review_past_its_window_expires_and_can_no_longer_be_approved(pay, worker, buyer, seller,
                                                                                         admin):
    order, payment, assessment = _held(pay, buyer, seller, admin)
    backdate(pay, payment["payment_uuid"], 5, column="expires_at")
    assert worker.send_task("payments.expire_pending_payments").get(timeout=10) == 1
    expired = pay.api(buyer.token).get(f"/api/payments/{payment['payment_uuid']}/").json
    assert (expired["status"], expired["failure_reason"]) == ("expired", "payment_expired")
    late = pay.api(admin.token).post(f"/api/risk/assessments/{assessment['assessment_uuid']}/approve/", {})
    assert late.status == 409 and late.json["error"] == "review_state_conflict"
    assert order_status(pay, buyer, order["order_uuid"]) == "pending_payment"
    again = start_payment(pay, buyer, order)  # the order is free for another attempt
    assert again["status"] == "pending"


def test_a_payment_that_cannot_be_reconciled_goes_to_the_back_and_the_rest_are_settled(pay, worker, settings, buyer,
                                                                                         seller):
    stuck_order = new_order(pay, buyer, seller, price="100.66", quantity=1)
    stuck = wait_payment(pay, buyer, start_payment(pay, buyer, stuck_order)["payment_uuid"], "processing")
    with pay.apps["payments"].app_context():  # its provider is not configured on this worker: asking it fails
        db.session.execute(sa.update(Payment).where(Payment.payment_uuid == uuid.UUID(stuck["payment_uuid"]))
                           .values(payment_method="wechat_pay"))
        db.session.commit()
    lost_order = new_order(pay, buyer, seller, price="100.77", quantity=1)
    lost = wait_payment(pay, buyer, start_payment(pay, buyer, lost_order)["payment_uuid"], "processing")
    backdate(pay, stuck["payment_uuid"], settings.payment_reconcile_after + 10)  # the oldest: asked first
    backdate(pay, lost["payment_uuid"], settings.payment_reconcile_after + 5)
    assert reconcile(worker) == {"unsettled": 1, "succeeded": 1}
    wait_payment(pay, buyer, lost["payment_uuid"], "succeeded")
    assert reconcile(worker) == {}  # the failing one went to the back of the queue, not round again at once
    assert pay.api(buyer.token).get(f"/api/payments/{stuck['payment_uuid']}/").json["status"] == "processing"


def captured_settled(stack, payment_uuid: str):
    with stack.apps["payments"].app_context():
        return db.session.scalar(sa.select(Payment.capture_settled_at).where(
            Payment.payment_uuid == uuid.UUID(payment_uuid)))


def test_a_capture_whose_order_side_was_lost_is_driven_again(pay, worker, settings, buyer, seller):
    """The broker forgot the tail of a capture chain (`orders.mark_paid`, `settle_capture`) after the
    capture committed: beat finds the payment from the database and runs the tail again."""
    paid_order = new_order(pay, buyer, seller)
    paid = wait_payment(pay, buyer, start_payment(pay, buyer, paid_order)["payment_uuid"], "succeeded")
    wait_for(lambda: captured_settled(pay, paid["payment_uuid"]), what="a whole capture chain to settle")
    order = new_order(pay, buyer, seller, price="100.66", quantity=1)  # no callback: we capture by hand
    payment = wait_payment(pay, buyer, start_payment(pay, buyer, order)["payment_uuid"], "processing")
    with pay.apps["payments"].app_context():
        payment_id = db.session.scalar(sa.select(Payment.id).where(
            Payment.payment_uuid == uuid.UUID(payment["payment_uuid"])))
    assert worker.send_task("payments.capture", args=[payment_id]).get(timeout=10) is True  # the head alone
    assert order_status(pay, buyer, order["order_uuid"]) == "pending_payment"
    redrive = lambda: worker.send_task("payments.redrive_unsettled_captures").get(timeout=10)  # noqa: E731
    assert redrive() == 0  # just captured: its tail may still be on its way
    backdate(pay, payment["payment_uuid"], settings.payment_redrive_after + 5, column="paid_at")
    assert redrive() == 1
    wait_for(lambda: order_status(pay, buyer, order["order_uuid"]) == "paid", what="the order paid")
    wait_for(lambda: captured_settled(pay, payment["payment_uuid"]), what="the capture settled")
    assert redrive() == 0

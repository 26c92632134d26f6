"""The refund workflow on a real worker: steps run twice with one effect, racing refunds never exceed
the captured amount, automatic refunds of money taken for a cancelled order, a refund that overtakes
the capture, provider outages and refusals, and the beat re-drive."""
from __future__ import annotations

import datetime as dt
import logging
import uuid
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal

import sqlalchemy as sa

from api.payments import create_app
from models import Order, OrderEvent, Payment, PaymentOutbox, Refund, db, utcnow
from models.refund import release
from tasks.payments.providers import ProviderRejected, ProviderUnavailable
from tasks.payments.providers.sandbox import SandboxProvider
from tests.factories import force_status
from tests.payments.conftest import (
    inbox_about, order_status, paid_order, refunds_of, wait_payment, wait_refund,
)
from tests.payments.test_payment_workflow import event_types, signed_success, silent_payment
from tests.support.servers import closed_port
from tests.support.waiting import stays, wait_for


def refund_row(stack, refund_uuid: str) -> Refund:
    with stack.apps["payments"].app_context():
        row = db.session.scalars(sa.select(Refund).where(Refund.refund_uuid == uuid.UUID(refund_uuid))).one()
        db.session.expunge(row)
        return row


def payment_row(stack, payment_uuid: str) -> Payment:
    with stack.apps["payments"].app_context():
        row = db.session.scalars(sa.select(Payment).where(Payment.payment_uuid == uuid.UUID(payment_uuid))).one()
        db.session.expunge(row)
        return row


def refund_events(stack, refund_uuid: str) -> list[str]:
    with stack.apps["payments"].app_context():
        return list(db.session.scalars(sa.select(PaymentOutbox.event_type).where(
            PaymentOutbox.aggregate_uuid == uuid.UUID(refund_uuid)).order_by(PaymentOutbox.id)))


def cancellations(stack, order_uuid: str) -> int:
    with stack.orders_app.app_context():
        return db.session.scalar(sa.select(sa.func.count()).select_from(OrderEvent).join(Order).where(
            Order.order_uuid == uuid.UUID(order_uuid), OrderEvent.to_status == "cancelled"))


def test_every_step_twice_has_one_effect(pay, worker, buyer, seller):
    order, payment = paid_order(pay, buyer, seller, price="100.00")
    path = f"/api/payments/{payment['payment_uuid']}/refund/"
    reply = pay.api(seller.token).post(path, {"amount": "40.00"})
    assert reply.status == 202
    refund_uuid = reply.json["refund_uuid"]
    refund_id = refund_row(pay, refund_uuid).id
    # Redeliveries racing the workflow's own run, then once more after it finished.
    racing = [worker.send_task(name, args=[refund_id])
              for name in ("payments.refund_at_provider", "payments.settle_refund") * 2]
    [r.get(timeout=15) for r in racing]
    wait_refund(pay, buyer, payment["payment_uuid"], refund_uuid, "succeeded")
    settled = refund_row(pay, refund_uuid)
    assert worker.send_task("payments.refund_at_provider", args=[refund_id]).get(timeout=10) == "decided"
    assert worker.send_task("payments.settle_refund", args=[refund_id]).get(timeout=10) is False  # partial
    stays(lambda: refund_events(pay, refund_uuid) == ["refund_workflow.start", "refund.succeeded"], 0.5)
    again = refund_row(pay, refund_uuid)
    assert (again.refunded_at, again.updated_at) == (settled.refunded_at, settled.updated_at)
    row = payment_row(pay, payment["payment_uuid"])
    assert (row.status.value, row.refund_reserved, row.refunded_amount) == (
        "partially_refunded", Decimal("40.00"), Decimal("40.00"))
    # orders.on_refunded: only a full refund cancels, and a second run changes nothing.
    assert worker.send_task("orders.on_refunded", args=[False, order["order_uuid"]]).get(timeout=10) is False
    assert order_status(pay, buyer, order["order_uuid"]) == "paid"
    assert [worker.send_task("orders.on_refunded", args=[True, order["order_uuid"]]).get(timeout=10)
            for _ in range(2)] == [True, True]
    assert cancellations(pay, order["order_uuid"]) == 1


def test_racing_refunds_never_exceed_the_captured_amount(pay, buyer, seller):
    """Ten refunds of 15.00 against 100.00: six fit, four are refused, on SQLite and MariaDB (row lock)."""
    _, payment = paid_order(pay, buyer, seller, price="100.00")
    api = pay.api(seller.token)
    path = f"/api/payments/{payment['payment_uuid']}/refund/"
    with ThreadPoolExecutor(max_workers=10) as threads:
        replies = list(threads.map(lambda _: api.post(path, {"amount": "15.00"}), range(10)))
    assert sorted(r.status for r in replies) == [202] * 6 + [422] * 4, [r.json for r in replies]
    assert {r.json["details"]["remainder"] for r in replies if r.status == 422} == {"10.00"}
    for reply in (r for r in replies if r.status == 202):
        wait_refund(pay, buyer, payment["payment_uuid"], reply.json["refund_uuid"], "succeeded")
    made = refunds_of(pay, buyer, payment["payment_uuid"])
    assert sum(Decimal(r["amount"]) for r in made if r["status"] != "failed") == Decimal("90.00")
    # The rest, raced by default-amount requests: one takes it all, the others find nothing left.
    with ThreadPoolExecutor(max_workers=5) as threads:
        rest = list(threads.map(lambda _: api.post(path, {}), range(5)))
    assert sorted(r.status for r in rest) == [202] + [409] * 4, [r.json for r in rest]
    assert [r.json["amount"] for r in rest if r.status == 202] == ["10.00"]
    done = wait_payment(pay, buyer, payment["payment_uuid"], "refunded")
    assert (done["refunded_amount"], len(refunds_of(pay, buyer, payment["payment_uuid"]))) == ("100.00", 7)


def test_money_captured_for_a_cancelled_order_is_refunded_automatically(pay, worker, buyer, seller):
    order, payment = silent_payment(pay, buyer, seller)
    force_status(pay, order["order_uuid"], "cancelled")  # the timeout sweep won the race
    raw, headers = signed_success(pay, payment)
    assert pay.api().post("/api/payments/callback/sandbox/", raw=raw, headers=headers).status == 200
    done = wait_payment(pay, buyer, payment["payment_uuid"], "refunded")
    assert done["refund_due"] and done["refunded_amount"] == payment["amount"]
    [made] = refunds_of(pay, buyer, payment["payment_uuid"])
    assert (made["amount"], made["reason"]) == (payment["amount"], "order_not_payable")
    assert refund_row(pay, made["refund_uuid"]).request_key == f"refund-due:{payment['payment_uuid']}"
    for person in (buyer, seller):  # both are told the money went back
        wait_for(lambda: inbox_about(pay, person, made["refund_uuid"]), what="told of the refund")
    # `payment.refund_required` delivered again: the same refund (request key `refund-due:<payment>`).
    row = payment_row(pay, payment["payment_uuid"])
    again = {"event_id": str(uuid.uuid4()), "type": "payment.refund_required",
             "data": {"payment_id": row.id, "reason": "order_not_payable"}}
    redelivered = worker.send_task("payments.refund_due_payment", args=[again]).get(timeout=10)
    assert redelivered == made["refund_uuid"]
    assert len(refunds_of(pay, buyer, payment["payment_uuid"])) == 1
    assert cancellations(pay, order["order_uuid"]) == 0  # forced: the refund adds no cancellation


def test_money_captured_for_a_cancelled_payment_is_refunded_and_it_stays_cancelled(pay, buyer, seller):
    order, payment = silent_payment(pay, buyer, seller)
    assert pay.api(buyer.token).post(f"/api/payments/{payment['payment_uuid']}/cancel/", {}).status == 200
    raw, headers = signed_success(pay, payment)
    assert pay.api().post("/api/payments/callback/sandbox/", raw=raw, headers=headers).status == 200
    made = wait_for(lambda: [r for r in refunds_of(pay, buyer, payment["payment_uuid"]) if r["status"] == "succeeded"],
                    what="the automatic refund")
    assert [(r["amount"], r["reason"]) for r in made] == [(payment["amount"], "captured_after_cancelled")]
    row = payment_row(pay, payment["payment_uuid"])
    assert (row.status.value, row.refunded_amount, row.refund_due) == ("cancelled", Decimal(payment["amount"]), True)
    assert order_status(pay, buyer, order["order_uuid"]) == "pending_payment"


def test_an_unreachable_provider_is_retried(pay, buyer, seller, monkeypatch):
    answer = SandboxProvider.refund
    calls = []

    def flaky(self, request):
        calls.append(request.idempotency_key)
        if len(calls) == 1:
            raise ProviderUnavailable("sandbox down")
        return answer(self, request)

    monkeypatch.setattr(SandboxProvider, "refund", flaky)
    _, payment = paid_order(pay, buyer, seller, price="30.00")
    reply = pay.api(seller.token).post(f"/api/payments/{payment['payment_uuid']}/refund/", {})
    wait_refund(pay, buyer, payment["payment_uuid"], reply.json["refund_uuid"], "succeeded")
    assert calls == [f"cfmp:refund:{reply.json['refund_uuid']}"] * 2  # the same refund, asked again


def test_beat_redrives_a_refund_whose_kickoff_was_lost(pay, worker, settings, buyer, seller):
    """A refund taken while the broker was away stays pending until the beat sweep re-drives it."""
    _, payment = paid_order(pay, buyer, seller, price="25.00")
    offline = create_app(pay.apps["payments"].config["CFMP_SETTINGS"].replace(
        broker_url=f"redis://127.0.0.1:{closed_port()}/0")).test_client()
    created = offline.post(f"/api/payments/{payment['payment_uuid']}/refund/", json={"amount": "5.00"},
                           headers={"Authorization": f"Bearer {seller.token}"})
    assert created.status_code == 202
    refund_uuid = created.get_json()["refund_uuid"]
    stays(lambda: refund_row(pay, refund_uuid).status.value == "pending", 0.3)
    assert worker.send_task("payments.redrive_stalled_refunds").get(timeout=10) == 0  # not stalled yet
    with pay.apps["payments"].app_context():
        past = utcnow() - dt.timedelta(seconds=settings.payment_redrive_after + 5)
        db.session.execute(sa.update(Refund).where(Refund.refund_uuid == uuid.UUID(refund_uuid))
                           .values(updated_at=past))
        db.session.commit()
    assert worker.send_task("payments.redrive_stalled_refunds").get(timeout=10) == 1
    wait_refund(pay, buyer, payment["payment_uuid"], refund_uuid, "succeeded")
    wait_payment(pay, buyer, payment["payment_uuid"], "partially_refunded")


def test_a_refund_that_overtakes_mark_paid_leaves_the_order_cancelled(pay, worker, buyer, seller):
    """Captured, then refunded in full before `orders.mark_paid` ran (driven step by step in that
    order): the order is cancelled (not paid with the money back) and no refund is flagged due."""
    order, payment = silent_payment(pay, buyer, seller)
    payment_id = payment_row(pay, payment["payment_uuid"]).id
    assert worker.send_task("payments.capture", args=[payment_id]).get(timeout=10) is True
    reply = pay.api(seller.token).post(f"/api/payments/{payment['payment_uuid']}/refund/", {})
    assert reply.status == 202, reply.json
    wait_payment(pay, buyer, payment["payment_uuid"], "refunded")
    wait_for(lambda: order_status(pay, buyer, order["order_uuid"]) == "cancelled", what="the order cancelled")
    paid_at = utcnow().isoformat()
    marked = worker.send_task("orders.mark_paid", args=[order["order_uuid"], "sandbox", paid_at])
    assert marked.get(timeout=10) is False
    assert worker.send_task("payments.settle_capture", args=[False, payment_id]).get(timeout=10) is False
    assert order_status(pay, buyer, order["order_uuid"]) == "cancelled"
    assert pay.api(buyer.token).get(f"/api/orders/{order['order_uuid']}/").json["cancel_reason"] == "refunded"
    row = payment_row(pay, payment["payment_uuid"])
    assert (row.status.value, row.refunded_amount, row.refund_due) == ("refunded", row.amount, False)
    assert "payment.refund_required" not in event_types(pay, payment["payment_uuid"])
    assert len(refunds_of(pay, buyer, payment["payment_uuid"])) == 1


def test_a_refusal_or_a_missing_provider_fails_the_refund_and_releases_it(pay, worker, buyer, seller,
                                                                          monkeypatch):
    """`ProviderRejected` (or no usable provider) fails the refund at once: amount released,
    `refund.failed` recorded, nothing left processing for the re-drive to send again forever."""
    def refuses(self, request):
        raise ProviderRejected("ACQ.TRADE_HAS_CLOSE")

    monkeypatch.setattr(SandboxProvider, "refund", refuses)
    _, payment = paid_order(pay, buyer, seller, price="50.00")
    path = f"/api/payments/{payment['payment_uuid']}/refund/"
    rejected = pay.api(seller.token).post(path, {"amount": "20.00"})
    failed = wait_refund(pay, buyer, payment["payment_uuid"], rejected.json["refund_uuid"], "failed")
    assert failed["failure_reason"] == "provider_rejected: ACQ.TRADE_HAS_CLOSE"
    assert refund_events(pay, rejected.json["refund_uuid"]) == ["refund_workflow.start", "refund.failed"]
    with pay.apps["payments"].app_context():  # the payment's provider is gone from this system
        db.session.execute(sa.update(Payment)
                           .where(Payment.payment_uuid == uuid.UUID(payment["payment_uuid"]))
                           .values(payment_method="gone"))
        db.session.commit()
    orphan = pay.api(seller.token).post(path, {"amount": "30.00"})
    failed = wait_refund(pay, buyer, payment["payment_uuid"], orphan.json["refund_uuid"], "failed")
    assert failed["failure_reason"] == "provider_not_configured"
    row = payment_row(pay, payment["payment_uuid"])
    assert (row.status.value, row.refund_reserved, row.refunded_amount) == ("succeeded", Decimal("0.00"),
                                                                           Decimal("0.00"))
    with pay.apps["payments"].app_context():
        past = utcnow() - dt.timedelta(days=1)
        db.session.execute(sa.update(Refund).values(updated_at=past))
        db.session.commit()
    # Nothing left processing for the re-drive.
    assert worker.send_task("payments.redrive_stalled_refunds").get(timeout=10) == 0


def test_beat_makes_the_refund_of_a_payment_flagged_due_without_one(pay, worker, settings, buyer, seller):
    """`refund_due` set but its `payment.refund_required` dead-lettered (or flagged before refunds
    existed): the re-drive finds it in the database and makes the refund, once."""
    order, payment = paid_order(pay, buyer, seller, price="45.00")
    force_status(pay, order["order_uuid"], "cancelled")
    with pay.apps["payments"].app_context():
        db.session.execute(sa.update(Payment)
                           .where(Payment.payment_uuid == uuid.UUID(payment["payment_uuid"]))
                           .values(refund_due=True))  # flagged, its event lost
        db.session.commit()
    assert worker.send_task("payments.redrive_stalled_refunds").get(timeout=10) == 0  # not stalled yet
    with pay.apps["payments"].app_context():
        past = utcnow() - dt.timedelta(seconds=settings.payment_redrive_after + 5)
        db.session.execute(sa.update(Payment)
                           .where(Payment.payment_uuid == uuid.UUID(payment["payment_uuid"]))
                           .values(updated_at=past))
        db.session.commit()
    assert worker.send_task("payments.redrive_stalled_refunds").get(timeout=10) == 1
    done = wait_payment(pay, buyer, payment["payment_uuid"], "refunded")
    assert done["refunded_amount"] == "45.00"
    [made] = refunds_of(pay, buyer, payment["payment_uuid"])
    assert refund_row(pay, made["refund_uuid"]).request_key == f"refund-due:{payment['payment_uuid']}"
    with pay.apps["payments"].app_context():
        db.session.execute(sa.update(Payment).values(updated_at=past))
        db.session.commit()
    assert worker.send_task("payments.redrive_stalled_refunds").get(timeout=10) == 0  # never twice


def test_a_release_its_guard_refuses_is_logged_as_an_error(pay, buyer, seller, caplog):
    """Giving back more than is reserved would mean the books are wrong already: nothing changes,
    and it is said out loud instead of silently."""
    _, payment = paid_order(pay, buyer, seller, price="12.00")
    row = payment_row(pay, payment["payment_uuid"])
    with pay.apps["payments"].app_context(), caplog.at_level(logging.ERROR, logger="models.refund"):
        assert release(row.id, Decimal("5.00")) is False
        db.session.commit()
    assert [r.levelno for r in caplog.records if r.name == "models.refund"] == [logging.ERROR]
    assert payment_row(pay, payment["payment_uuid"]).refund_reserved == Decimal("0.00")

"""Beat re-drives the order side of a refund whose chain lost its tail (`orders.on_refunded`,
`payments.settle_refund_order`) after `settle_refund` committed, on a real worker: the order is
cancelled once, however often the tail runs, and a refund whose order side finished is left alone."""
from __future__ import annotations

import datetime as dt
import uuid

import sqlalchemy as sa

from api.payments import create_app
from models import Order, OrderEvent, OrderOutbox, Refund, db, utcnow
from tests.payments.conftest import order_status, paid_order, wait_payment
from tests.payments.test_refund_workflow import cancellations, refund_row
from tests.support.servers import closed_port
from tests.support.waiting import stays, wait_for


def redrive(worker) -> int:
    return worker.send_task("payments.redrive_unsettled_refunds").get(timeout=10)


def order_settled(stack, refund_uuid: str):
    return refund_row(stack, refund_uuid).order_settled_at


def set_refund(stack, refund_uuid: str, **values) -> None:
    with stack.apps["payments"].app_context():
        db.session.execute(sa.update(Refund).where(Refund.refund_uuid == uuid.UUID(refund_uuid))
                           .values(**values))
        db.session.commit()


def backdate(stack, refund_uuid: str, seconds: float) -> None:
    set_refund(stack, refund_uuid, refunded_at=utcnow() - dt.timedelta(seconds=seconds))


def cancelled_events(stack, order_uuid: str) -> int:
    with stack.orders_app.app_context():
        return db.session.scalar(sa.select(sa.func.count()).select_from(OrderOutbox).where(
            OrderOutbox.aggregate_uuid == uuid.UUID(order_uuid), OrderOutbox.event_type == "order.cancelled"))


def audit_trail(stack, order_uuid: str) -> list[tuple[str, str, str]]:
    with stack.orders_app.app_context():
        return [tuple(row) for row in db.session.execute(
            sa.select(OrderEvent.event_type, OrderEvent.to_status, OrderEvent.reason).join(Order)
            .where(Order.order_uuid == uuid.UUID(order_uuid), OrderEvent.event_type != "created")
            .order_by(OrderEvent.id))]


def refund_without_its_tail(pay, worker, buyer, seller) -> tuple[dict, dict, str]:
    """A full refund of a paid order settled by the head of its chain alone (`refund_at_provider`,
    `settle_refund`), as if the broker lost `orders.on_refunded` afterwards: (order, payment, refund uuid).
    Taken while the broker was away, so its own workflow never starts."""
    order, payment = paid_order(pay, buyer, seller, price="60.00")
    offline = create_app(pay.apps["payments"].config["CFMP_SETTINGS"].replace(
        broker_url=f"redis://127.0.0.1:{closed_port()}/0")).test_client()
    created = offline.post(f"/api/payments/{payment['payment_uuid']}/refund/", json={},
                           headers={"Authorization": f"Bearer {seller.token}"})
    assert created.status_code == 202, created.get_json()
    refund_uuid = created.get_json()["refund_uuid"]
    refund_id = refund_row(pay, refund_uuid).id
    assert worker.send_task("payments.refund_at_provider", args=[refund_id]).get(timeout=10) == "processing"
    assert worker.send_task("payments.settle_refund", args=[refund_id]).get(timeout=10) is True  # in full
    wait_payment(pay, buyer, payment["payment_uuid"], "refunded")
    assert refund_row(pay, refund_uuid).status.value == "succeeded"
    stays(lambda: order_status(pay, buyer, order["order_uuid"]) == "paid", 0.3)  # the tail is lost
    assert order_settled(pay, refund_uuid) is None
    return order, payment, refund_uuid


def test_a_refund_whose_order_side_was_lost_is_driven_again(pay, worker, settings, buyer, seller):
    order, _, refund_uuid = refund_without_its_tail(pay, worker, buyer, seller)
    assert redrive(worker) == 0  # just settled: its tail may still be on its way
    backdate(pay, refund_uuid, settings.payment_redrive_after + 5)
    assert redrive(worker) == 1
    wait_for(lambda: order_status(pay, buyer, order["order_uuid"]) == "cancelled", what="the order cancelled")
    wait_for(lambda: order_settled(pay, refund_uuid), what="the refund's order side settled")
    assert pay.api(buyer.token).get(f"/api/orders/{order['order_uuid']}/").json["cancel_reason"] == "refunded"
    assert audit_trail(pay, order["order_uuid"]) == [("paid", "paid", ""),
                                                      ("cancelled", "cancelled", "refunded")]
    assert redrive(worker) == 0  # settled: never again


def test_a_refund_whose_order_side_finished_is_not_driven_again(pay, worker, settings, buyer, seller):
    """The whole chain ran (the order cancelled, the marker set by its last step): beat leaves it alone."""
    order, payment = paid_order(pay, buyer, seller, price="35.00")
    reply = pay.api(seller.token).post(f"/api/payments/{payment['payment_uuid']}/refund/", {})
    assert reply.status == 202, reply.json
    refund_uuid = reply.json["refund_uuid"]
    wait_for(lambda: order_settled(pay, refund_uuid), what="a whole refund chain to settle")
    assert order_status(pay, buyer, order["order_uuid"]) == "cancelled"
    partial_order, partial = paid_order(pay, buyer, seller, price="50.00")  # a partial one settles too
    path = f"/api/payments/{partial['payment_uuid']}/refund/"
    partial_uuid = pay.api(seller.token).post(path, {"amount": "20.00"}).json["refund_uuid"]
    wait_for(lambda: order_settled(pay, partial_uuid), what="a partial refund's chain to settle")
    assert order_status(pay, buyer, partial_order["order_uuid"]) == "paid"
    for uuid_ in (refund_uuid, partial_uuid):
        backdate(pay, uuid_, settings.payment_redrive_after + 5)
    assert redrive(worker) == 0
    assert cancellations(pay, order["order_uuid"]) == 1


def test_driving_the_order_side_again_twice_has_one_effect(pay, worker, settings, buyer, seller):
    """The re-driven tail lost its last step too (`settle_refund_order`, so the marker stays unset):
    the next sweep applies `orders.on_refunded` a second time, which changes nothing."""
    order, _, refund_uuid = refund_without_its_tail(pay, worker, buyer, seller)
    backdate(pay, refund_uuid, settings.payment_redrive_after + 5)
    assert redrive(worker) == 1
    wait_for(lambda: order_settled(pay, refund_uuid), what="the refund's order side settled")
    assert order_status(pay, buyer, order["order_uuid"]) == "cancelled"
    set_refund(pay, refund_uuid, order_settled_at=None)  # as if the broker lost settle_refund_order
    assert redrive(worker) == 1
    wait_for(lambda: order_settled(pay, refund_uuid), what="the refund's order side settled again")
    assert redrive(worker) == 0
    assert order_status(pay, buyer, order["order_uuid"]) == "cancelled"
    assert cancellations(pay, order["order_uuid"]) == 1
    assert cancelled_events(pay, order["order_uuid"]) == 1

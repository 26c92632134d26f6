"""The unpaid-order sweep: cancels with `payment_timeout`, and a payment landing at once wins."""
from __future__ import annotations

import datetime as dt
import threading
import uuid

import sqlalchemy as sa

from models import Order, OrderEvent, OrderStatus, db, utcnow
from tasks.orders import actions
from tests.factories import order_body


def backdate(stack, order_uuids, seconds: int) -> None:
    with stack.orders_app.app_context():
        db.session.execute(sa.update(Order).where(Order.order_uuid.in_([uuid.UUID(u) for u in order_uuids]))
                           .values(created_at=utcnow() - dt.timedelta(seconds=seconds)))
        db.session.commit()


def test_an_order_past_the_timeout_is_cancelled_by_the_system(stack, worker, buyer, seller):
    api = stack.api(buyer.token)
    late = api.post("/api/orders/", order_body(seller.uuid)).json
    fresh = api.post("/api/orders/", order_body(seller.uuid)).json
    backdate(stack, [late["order_uuid"]], stack.settings.order_payment_timeout + 5)
    assert worker.send_task("orders.expire_unpaid_orders").get(timeout=10) == 1
    order = api.get(f"/api/orders/{late['order_uuid']}/").json
    assert order["status"] == "cancelled" and order["cancel_reason"] == "payment_timeout"
    last = api.get(f"/api/orders/{late['order_uuid']}/events/").json["results"][-1]
    assert (last["actor"], last["from_status"], last["to_status"], last["reason"]) == (
        "system", "pending_payment", "cancelled", "payment_timeout")
    assert api.get(f"/api/orders/{fresh['order_uuid']}/").json["status"] == "pending_payment"
    assert worker.send_task("orders.expire_unpaid_orders").get(timeout=10) == 0


def test_a_payment_landing_during_the_sweep_wins(stack, buyer, seller):
    """Sweep and payments race on the same expired orders: each order ends paid xor cancelled,
    with exactly one transition recorded, and no paid order is ever cancelled."""
    count = 12  # payers + the sweep stay within the connection pool (5 + 10 overflow)
    uuids = [stack.api(buyer.token).post("/api/orders/", order_body(seller.uuid)).json["order_uuid"]
             for _ in range(count)]
    backdate(stack, uuids, stack.settings.order_payment_timeout + 5)
    start = threading.Barrier(count + 1)
    paid = {}

    def pay(order_uuid):
        with stack.orders_app.app_context():
            start.wait()
            paid[order_uuid] = actions.mark_paid(uuid.UUID(order_uuid), "sandbox", utcnow())
            db.session.commit()

    def sweep():
        with stack.orders_app.app_context():
            start.wait()
            actions.expire_unpaid_orders(stack.settings.order_payment_timeout, batch=count)
            db.session.commit()

    threads = [threading.Thread(target=pay, args=(u,)) for u in uuids] + [threading.Thread(target=sweep)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    with stack.orders_app.app_context():
        for order_uuid in uuids:
            order = db.session.scalars(sa.select(Order).where(Order.order_uuid == uuid.UUID(order_uuid))).one()
            moves = db.session.scalars(sa.select(OrderEvent.to_status).where(
                OrderEvent.order_id == order.id, OrderEvent.from_status == "pending_payment")).all()
            assert moves == [order.status.value], (order_uuid, moves)
            assert (order.status is OrderStatus.PAID) == paid[order_uuid]
            if order.status is OrderStatus.CANCELLED:
                assert order.cancel_reason == "payment_timeout"

"""The outbox with a real worker on real Redis: delivered once, survives a broker outage, deduped."""
from __future__ import annotations

import datetime as dt
import json
import uuid

import sqlalchemy as sa
from celery.signals import before_task_publish

from api.orders import create_app
from models import OrderInbox, OrderOutbox, db, utcnow
from tests.factories import order_body
from tests.support.servers import closed_port
from tests.support.waiting import stays, wait_for


def outbox_rows(stack, order_uuid: str) -> list[OrderOutbox]:
    with stack.orders_app.app_context():
        rows = db.session.scalars(sa.select(OrderOutbox).where(OrderOutbox.aggregate_uuid == uuid.UUID(order_uuid))
                                  .order_by(OrderOutbox.id)).all()
        db.session.expunge_all()
        return rows


def inbox_rows(stack, event_ids) -> list[OrderInbox]:
    with stack.orders_app.app_context():
        rows = db.session.scalars(sa.select(OrderInbox).where(OrderInbox.event_id.in_(list(event_ids)))).all()
        db.session.expunge_all()
        return rows


def test_an_order_event_is_published_after_commit_and_delivered_once(stack, worker, buyer, seller):
    order = stack.api(buyer.token).post("/api/orders/", order_body(seller.uuid)).json
    [event] = outbox_rows(stack, order["order_uuid"])
    assert event.event_type == "order.created" and event.published_at is not None  # published by the request
    [received] = wait_for(lambda: inbox_rows(stack, [event.event_id]), what="the event to be recorded")
    assert received.consumer == "orders.record_event"
    assert json.loads(received.payload)["data"]["order_uuid"] == order["order_uuid"]
    stays(lambda: len(inbox_rows(stack, [event.event_id])) == 1, duration=0.5)
    assert worker.send_task("orders.relay_outbox").get(timeout=10) == 0  # nothing left to relay


def test_every_transition_publishes_its_event(stack, worker, buyer, seller):
    order = stack.api(buyer.token).post("/api/orders/", order_body(seller.uuid)).json
    assert stack.api(buyer.token).post(f"/api/orders/{order['order_uuid']}/cancel/", {}).status == 200
    events = outbox_rows(stack, order["order_uuid"])
    assert [e.event_type for e in events] == ["order.created", "order.cancelled"]
    wait_for(lambda: len(inbox_rows(stack, [e.event_id for e in events])) == 2, what="both events recorded")


def test_broker_down_at_request_time_loses_nothing(stack, worker, settings, buyer, seller):
    offline = create_app(settings.replace(broker_url=f"redis://127.0.0.1:{closed_port()}/0")).test_client()
    headers = {"Authorization": f"Bearer {buyer.token}"}
    created = [offline.post("/api/orders/", json=order_body(seller.uuid), headers=headers) for _ in range(3)]
    assert [r.status_code for r in created] == [201, 201, 201]  # the order is taken even so
    events = [outbox_rows(stack, r.get_json()["order_uuid"])[0] for r in created]
    assert all(e.published_at is None for e in events)
    with stack.orders_app.app_context():  # as if the relay's grace period had passed
        db.session.execute(sa.update(OrderOutbox).values(created_at=utcnow() - dt.timedelta(minutes=1)))
        db.session.commit()
    assert worker.send_task("orders.relay_outbox").get(timeout=10) == 3
    wait_for(lambda: len(inbox_rows(stack, [e.event_id for e in events])) == 3, what="relayed events recorded")
    assert all(e.published_at is not None and e.attempts == 1
               for e in (outbox_rows(stack, r.get_json()["order_uuid"])[0] for r in created))
    assert worker.send_task("orders.relay_outbox").get(timeout=10) == 0


def test_a_consumer_run_twice_on_one_event_records_it_once(stack, worker):
    event = {"event_id": str(uuid.uuid4()), "type": "order.created", "occurred_at": "2026-01-01T00:00:00+00:00",
             "data": {"order_uuid": str(uuid.uuid4())}}
    first = worker.send_task("orders.record_event", args=[event])
    second = worker.send_task("orders.record_event", args=[event])
    assert sorted([first.get(timeout=10), second.get(timeout=10)]) == [False, True]
    assert len(inbox_rows(stack, [uuid.UUID(event["event_id"])])) == 1


def test_published_messages_name_their_event_for_operators(stack, worker, buyer, seller):
    """What Flower and the worker logs show of an event's task: its type and id, not a dump of the payload."""
    seen: list[dict] = []

    def record(sender=None, headers=None, **_):
        seen.append({"task": sender, **(headers or {})})

    before_task_publish.connect(record, weak=False)
    try:
        order = stack.api(buyer.token).post("/api/orders/", order_body(seller.uuid)).json
    finally:
        before_task_publish.disconnect(record)
    [event] = outbox_rows(stack, order["order_uuid"])
    published = [h for h in seen if h.get("id", "").startswith(str(event.event_id))]
    assert sorted(h["task"] for h in published) == ["notifications.fanout_event", "orders.record_event"]
    assert {h["argsrepr"] for h in published} == {f"[order.created {event.event_id}]"}

"""The outbox with a real worker on real Redis: delivered once, survives a broker outage, deduped.

The witness of a delivered order event is its only consumer's dedupe row: the notification
fan-out's `notification_inbox` row (consumer `notifications.fanout_event`)."""
from __future__ import annotations

import datetime as dt
import json
import threading
import uuid

import redis
import sqlalchemy as sa
from celery.signals import before_task_publish

from api.orders import create_app
from models import NotificationInbox, OrderOutbox, db, utcnow
from tasks.outbox import publish_all
from tests.factories import order_body
from tests.notifications.support import order_event
from tests.support.servers import closed_port, drop_keys
from tests.support.waiting import stays, wait_for

FANOUT = "notifications.fanout_event"


def outbox_rows(stack, order_uuid: str) -> list[OrderOutbox]:
    with stack.orders_app.app_context():
        rows = db.session.scalars(sa.select(OrderOutbox).where(OrderOutbox.aggregate_uuid == uuid.UUID(order_uuid))
                                  .order_by(OrderOutbox.id)).all()
        db.session.expunge_all()
        return rows


def inbox_rows(stack, event_ids) -> list[NotificationInbox]:
    """The fan-out's dedupe rows of these events (one per event it consumed)."""
    with stack.apps["notifications"].app_context():
        rows = db.session.scalars(sa.select(NotificationInbox).where(
            NotificationInbox.consumer == FANOUT, NotificationInbox.event_id.in_(list(event_ids)))).all()
        db.session.expunge_all()
        return rows


def test_an_order_event_is_published_after_commit_and_delivered_once(stack, worker, buyer, seller):
    order = stack.api(buyer.token).post("/api/orders/", order_body(seller.uuid)).json
    [event] = outbox_rows(stack, order["order_uuid"])
    assert event.event_type == "order.created"
    wait_for(lambda: outbox_rows(stack, order["order_uuid"])[0].published_at is not None,
             what="the request's publish to be marked")
    [received] = wait_for(lambda: inbox_rows(stack, [event.event_id]), what="the event to be recorded")
    assert received.consumer == FANOUT
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


def test_a_consumer_run_twice_on_one_event_records_it_once(stack, worker, buyer, seller):
    event = order_event("order.created", buyer, seller)
    first = worker.send_task(FANOUT, args=[event])
    second = worker.send_task(FANOUT, args=[event])
    assert sorted([first.get(timeout=10), second.get(timeout=10)]) == [0, 2]  # buyer and seller, once
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
    assert [h["task"] for h in published] == [FANOUT]  # the order service consumes none of its own events
    assert {h["argsrepr"] for h in published} == {f"[order.created {event.event_id}]"}


def test_the_events_of_a_commit_reach_the_broker_in_one_round_trip(settings, monkeypatch):
    """Every task message and its `task-sent` event go out as one Redis pipeline, not a command each."""
    prefix = f"probe-{uuid.uuid4().hex[:8]}:"  # a key prefix no worker reads
    app = create_app(settings.replace(celery_key_prefix=prefix))
    me, sent = threading.get_ident(), []
    plain, pipelined = redis.client.Redis.execute_command, redis.client.Pipeline.execute

    def command(self, *args, **options):
        if threading.get_ident() == me:
            sent.append(str(args[0]).upper())
        return plain(self, *args, **options)

    def pipeline(self, *args, **options):
        if threading.get_ident() == me:
            sent.append(tuple(str(c[0][0]).upper() for c in self.command_stack))
        return pipelined(self, *args, **options)

    monkeypatch.setattr(redis.client.Redis, "execute_command", command)
    monkeypatch.setattr(redis.client.Pipeline, "execute", pipeline)
    events = lambda: [OrderOutbox.new("order.created", uuid.uuid4(), {}) for _ in range(3)]  # noqa: E731
    try:
        with app.app_context():
            publish_all(events(), "test")  # the first use declares the queues (once per channel)
            sent.clear()
            assert len(publish_all(events(), "test")) == 3
        assert sent == [("LPUSH", "PUBLISH") * 3], sent
    finally:
        drop_keys(settings.broker_url, prefix)

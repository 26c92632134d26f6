"""Events a restarted broker lost are published again by the relay (tasks.broker_memory), on real Redis
with a real worker.

A lost event is made the way Redis loses one: the order is created by a service whose broker key
prefix no worker reads, so its event is published and marked published, and no consumer ever sees
it. A restart is the relay's marker under another server run id, as a restarted Redis restored from
disk would hold it; data loss is no marker at all.
"""
from __future__ import annotations

import datetime as dt
import uuid

import redis
import sqlalchemy as sa

from api.orders import create_app
from models import OrderOutbox, db, utcnow
from tasks import broker_memory
from tests.factories import order_body
from tests.support.servers import drop_keys
from tests.support.waiting import stays, wait_for
from tests.tasks.test_outbox import inbox_rows, outbox_rows

TABLE = OrderOutbox.__tablename__


def lost_events(stack, settings, buyer, seller, count: int = 1) -> list[OrderOutbox]:
    """Orders whose `order.created` went to a broker prefix nobody consumes, marked published."""
    prefix = f"lost-{uuid.uuid4().hex[:8]}:"
    service = create_app(settings.replace(celery_key_prefix=prefix)).test_client()
    try:
        created = [service.post("/api/orders/", json=order_body(seller.uuid),
                                headers={"Authorization": f"Bearer {buyer.token}"}) for _ in range(count)]
        assert [r.status_code for r in created] == [201] * count
        uuids = [r.get_json()["order_uuid"] for r in created]
        events = wait_for(lambda: [e for u in uuids for e in outbox_rows(stack, u) if e.published_at is not None],
                          what="the events to be marked published")
    finally:
        drop_keys(settings.broker_url, prefix)
    assert len(events) == count
    return events


def marker(settings) -> tuple[str | None, str]:
    """(the marker's value, the server's run id now)."""
    client = redis.Redis.from_url(settings.broker_url)
    try:
        raw = client.get(broker_memory.marker_key(settings, TABLE))
        return (raw.decode() if raw is not None else None), client.info("server")["run_id"]
    finally:
        client.close()


def set_marker(settings, value: str | None) -> None:
    client = redis.Redis.from_url(settings.broker_url)
    try:
        key = broker_memory.marker_key(settings, TABLE)
        client.set(key, value) if value is not None else client.delete(key)
    finally:
        client.close()


def age(stack, events, by: dt.timedelta) -> None:
    with stack.orders_app.app_context():
        for event in events:
            db.session.execute(sa.update(OrderOutbox).where(OrderOutbox.id == event.id)
                               .values(created_at=event.created_at - by))
        db.session.commit()


def test_a_restarted_broker_gets_what_was_published_after_its_marker(stack, worker, settings, buyer, seller):
    before = utcnow()
    [lost] = lost_events(stack, settings, buyer, seller)
    stays(lambda: inbox_rows(stack, [lost.event_id]) == [], duration=0.3)
    set_marker(settings, f"{'0' * 40} {before.isoformat()}")  # written by an earlier run of the server
    assert worker.send_task("orders.relay_outbox").get(timeout=10) == 0  # nothing unpublished to relay
    [received] = wait_for(lambda: inbox_rows(stack, [lost.event_id]), what="the lost event to be consumed")
    assert received.event_id == lost.event_id
    value, run_id = marker(settings)
    assert value.split(" ")[0] == run_id  # the relay vouches for this run of the server now


def test_a_broker_that_kept_running_gets_nothing_again(stack, worker, settings, buyer, seller):
    [lost] = lost_events(stack, settings, buyer, seller)
    _, run_id = marker(settings)
    set_marker(settings, f"{run_id} {(utcnow() - dt.timedelta(hours=1)).isoformat()}")
    assert worker.send_task("orders.relay_outbox").get(timeout=10) == 0
    stays(lambda: inbox_rows(stack, [lost.event_id]) == [], duration=1.0)


def test_a_broker_without_the_marker_gets_the_replay_window_again(stack, worker, settings, buyer, seller):
    recent, old = lost_events(stack, settings, buyer, seller, count=2)
    age(stack, [old], dt.timedelta(seconds=settings.outbox_replay_window + 60))  # outside the window
    set_marker(settings, None)  # as after a restart without persistence
    assert worker.send_task("orders.relay_outbox").get(timeout=10) == 0
    wait_for(lambda: inbox_rows(stack, [recent.event_id]), what="the recent lost event to be consumed")
    stays(lambda: inbox_rows(stack, [old.event_id]) == [], duration=0.5)
    assert marker(settings)[0] is not None


def test_a_restart_goes_back_to_the_marker_less_a_margin_and_never_past_the_window(settings):
    now = utcnow()
    _, run_id = marker(settings)
    cases = {
        f"{run_id} {now.isoformat()}": None,  # same server run: nothing lost
        f"{'f' * 40} {(now - dt.timedelta(minutes=5)).isoformat()}": now - dt.timedelta(minutes=5) - broker_memory.MARGIN,
        f"{'f' * 40} {(now - dt.timedelta(days=3)).isoformat()}": now - dt.timedelta(seconds=settings.outbox_replay_window),
        f"{'f' * 40} not-a-time": now - dt.timedelta(seconds=settings.outbox_replay_window),
        None: now - dt.timedelta(seconds=settings.outbox_replay_window),
    }
    probe = settings.replace(celery_key_prefix=f"probe-{uuid.uuid4().hex[:8]}:")
    try:
        for value, since in cases.items():
            set_marker(probe, value)
            check = broker_memory.replay_from(probe, TABLE, now=now)
            assert (check.since, check.run_id) == (since, run_id), value
    finally:
        drop_keys(settings.broker_url, probe.celery_key_prefix)

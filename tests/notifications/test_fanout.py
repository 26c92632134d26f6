"""Order events become notifications for buyer and seller: real order service, gateway, outbox,
Redis and worker; the fan-out is deduped on the event id and on (event, recipient, channel)."""
from __future__ import annotations

import uuid

import pytest

from models import Notification, NotificationDelivery, NotificationFanout, NotificationInbox, db, utcnow
from tests.factories import order_body
from tests.notifications.support import deliveries, inbox, order_event, rows, set_preferences, update
from tests.support.waiting import stays, wait_for
from tests.tasks.test_sweep import backdate


def titles_for(stack, user, related_id: str) -> list[str]:
    return [n["title"] for n in inbox(stack, user) if n["related_id"] == related_id]


def wait_titles(stack, user, related_id: str, count: int) -> list[str]:
    return wait_for(lambda: (t := titles_for(stack, user, related_id)) and len(t) >= count and t,
                    what=f"{count} notification(s) of {related_id}")


def test_every_order_event_notifies_buyer_and_seller(stack, notify_worker, buyer, seller):
    set_preferences(stack, seller, language="en")  # the buyer keeps the default: Chinese
    api = stack.api(buyer.token)
    order = api.post("/api/orders/", order_body(seller.uuid)).json["order_uuid"]
    assert wait_titles(stack, buyer, order, 1) == ["订单已创建"]
    assert wait_titles(stack, seller, order, 1) == ["New order"]
    [created] = inbox(stack, seller)
    assert created["type"] == "transaction" and created["read"] is False and created["read_at"] is None
    assert "229.00 CNY" in created["content"] and order[:8] in created["content"]
    assert created["related_data"]["event_type"] == "order.created"
    assert created["related_data"]["order_uuid"] == order

    paid = notify_worker.send_task("orders.mark_paid", args=[order, "sandbox", utcnow().isoformat()])
    assert paid.get(timeout=10) is True
    assert wait_titles(stack, buyer, order, 2)[0] == "支付成功"
    assert wait_titles(stack, seller, order, 2)[0] == "Order paid"

    assert api.post(f"/api/orders/{order}/complete/", {}).status == 200
    assert wait_titles(stack, buyer, order, 3)[0] == "订单已完成"
    assert wait_titles(stack, seller, order, 3)[0] == "Order completed"
    assert [d["channel"] for d in deliveries(stack, buyer)] == ["in_app"] * 3  # no preferences: in-app only
    assert {d["status"] for d in deliveries(stack, buyer)} == {"delivered"}
    fanouts = wait_for(lambda: (f := rows(stack, NotificationFanout)) and all(x.recorded_at for x in f) and f,
                       what="every fan-out recorded by its chord body")
    assert len(fanouts) == 6 and {f.outcome for f in fanouts} == {"in_app:delivered"}


def test_cancellations_carry_the_reason(stack, notify_worker, buyer, seller):
    set_preferences(stack, buyer, language="en")
    api = stack.api(buyer.token)
    late = api.post("/api/orders/", order_body(seller.uuid)).json["order_uuid"]
    mine = api.post("/api/orders/", order_body(seller.uuid)).json["order_uuid"]
    backdate(stack, [late], stack.settings.order_payment_timeout + 5)
    assert notify_worker.send_task("orders.expire_unpaid_orders").get(timeout=10) == 1
    assert api.post(f"/api/orders/{mine}/cancel/", {"reason": "found it cheaper"}).status == 200

    buyer_late = wait_for(lambda: [n for n in inbox(stack, buyer) if n["related_id"] == late
                                   and n["title"] == "Order cancelled"], what="the timeout notice")
    assert "it was not paid in time" in buyer_late[0]["content"]
    seller_late = wait_for(lambda: [n for n in inbox(stack, seller) if n["related_id"] == late
                                    and n["title"] == "订单已取消"], what="the seller's timeout notice")
    assert "超时未支付" in seller_late[0]["content"]
    assert seller_late[0]["related_data"]["reason"] == "payment_timeout"
    wait_for(lambda: [n for n in inbox(stack, seller)
                      if n["related_id"] == mine and "found it cheaper" in n["content"]],
             what="the buyer's own reason, as written")
    assert wait_titles(stack, buyer, mine, 2)[0] == "Order cancelled"


def test_a_redelivered_event_notifies_once(stack, notify_worker, mailbox, buyer, seller):
    set_preferences(stack, buyer, channels={"email": True}, email_address="buyer@example.com")
    event = order_event("order.paid", buyer, seller)
    first = notify_worker.send_task("notifications.fanout_event", args=[event])
    second = notify_worker.send_task("notifications.fanout_event", args=[event])
    assert sorted([first.get(timeout=10), second.get(timeout=10)]) == [0, 2]  # two recipients, once
    wait_for(lambda: len(mailbox.to("buyer@example.com")) == 1, what="the email")
    wait_for(lambda: len(inbox(stack, seller)) == 1, what="the seller's notification")
    stays(lambda: len(inbox(stack, buyer)) == 1 and len(mailbox.to("buyer@example.com")) == 1, duration=0.5)
    assert sorted(d["channel"] for d in deliveries(stack, buyer)) == ["email", "in_app"]
    assert len(rows(stack, NotificationInbox, NotificationInbox.event_id == uuid.UUID(event["event_id"]))) == 1


def test_a_redriven_delivery_never_notifies_twice(stack, notify_worker, buyer, seller):
    """The same delivery task sent again (a redelivered message) finds its row settled."""
    notify_worker.send_task("notifications.fanout_event", args=[order_event("order.created", buyer, seller)])
    [delivery] = wait_for(lambda: [d for d in rows(stack, NotificationDelivery,
                                                    NotificationDelivery.recipient_uuid == buyer.uuid)
                                   if d.status == "delivered"], what="the in-app delivery")
    again = notify_worker.send_task("notifications.deliver_in_app", args=[delivery.id]).get(timeout=10)
    assert again["skipped"] is True and again["status"] == "delivered"
    assert len(rows(stack, Notification, Notification.recipient_uuid == buyer.uuid)) == 1
    assert rows(stack, NotificationDelivery, NotificationDelivery.id == delivery.id)[0].attempts == 1


def test_the_watchdog_drives_a_fanout_whose_chord_never_ran(stack, notify_worker, buyer, seller):
    from tasks.notifications import actions

    with stack.apps["notifications"].app_context():  # the rows are written, no chord is ever sent
        plans = actions.plan_fanout(order_event("order.completed", buyer, seller), consumer="test")
    assert len(plans) == 2
    assert notify_worker.send_task("notifications.retry_due_deliveries").get(timeout=10) == {
        "redriven": 0, "recorded": 0}  # within the grace, the chord is given its chance
    past = utcnow().replace(year=2020)
    update(stack, NotificationDelivery, NotificationDelivery.id > 0, next_attempt_at=past)
    update(stack, NotificationFanout, NotificationFanout.id > 0, created_at=past)
    assert notify_worker.send_task("notifications.retry_due_deliveries").get(timeout=10)["redriven"] == 2
    wait_for(lambda: len(inbox(stack, buyer)) == 1 and len(inbox(stack, seller)) == 1, what="both notifications")
    wait_for(lambda: {d["status"] for d in deliveries(stack, buyer) + deliveries(stack, seller)} == {"delivered"},
             what="both deliveries settled")
    assert notify_worker.send_task("notifications.retry_due_deliveries").get(timeout=10) == {
        "redriven": 0, "recorded": 2}
    assert {f.outcome for f in rows(stack, NotificationFanout)} == {"in_app:delivered"}


@pytest.mark.parametrize("returning", [True, False], ids=["insert-returning", "row-at-a-time"])
def test_a_plan_names_each_recipients_own_rows(stack, buyer, seller, monkeypatch, returning):
    """The fan-out's INSERTs hand each recipient their own ids (in one statement where the database
    returns ids from a multi-row INSERT, a row at a time on MySQL); a muted recipient is recorded
    at once and gets no chord."""
    from tasks.notifications import actions

    set_preferences(stack, buyer, channels={"email": True}, email_address="li.lei@example.com", language="en")
    set_preferences(stack, seller, channels={"in_app": False})  # every channel off
    event = order_event("order.paid", buyer, seller)
    with stack.apps["notifications"].app_context():
        dialect = db.engines["notifications"].dialect
        if dialect.insert_executemany_returning_sort_by_parameter_order != returning:
            monkeypatch.setattr(dialect, "insert_executemany_returning_sort_by_parameter_order", returning)
        [plan] = actions.plan_fanout(event, consumer="test")
        assert actions.plan_fanout(event, consumer="test") is None  # the same event again
    fanouts = {fanout.recipient_uuid: fanout for fanout in rows(stack, NotificationFanout)}
    mine, muted = fanouts[buyer.uuid], fanouts[seller.uuid]
    assert plan.fanout_id == mine.id
    assert (mine.title, mine.language, mine.recorded_at) == ("Payment received", "en", None)
    written = rows(stack, NotificationDelivery)
    assert sorted(plan.deliveries) == sorted((d.id, d.channel.value) for d in written)
    assert sorted(channel for _, channel in plan.deliveries) == ["email", "in_app"]
    assert {d.fanout_id for d in written} == {mine.id}
    assert (muted.title, muted.outcome) == ("订单已付款", "no channel enabled") and muted.recorded_at is not None
    assert len(rows(stack, NotificationInbox)) == 1


def test_an_in_app_delivery_redelivered_by_hand_notifies_once(stack, buyer, seller):
    """The second attempt finds the inbox row written (a duplicate key): delivered, still one row."""
    from tasks.notifications import actions, delivery

    app = stack.apps["notifications"]
    with app.app_context():
        actions.plan_fanout(order_event("order.created", buyer, seller), consumer="test")
    [delivery_id] = [row.id for row in rows(stack, NotificationDelivery,
                                             NotificationDelivery.recipient_uuid == buyer.uuid)]
    with app.app_context():
        first = delivery.deliver(delivery_id, stack.settings)
        assert actions.redeliver(db.session.get(NotificationDelivery, delivery_id), utcnow())
        db.session.commit()
        again = delivery.deliver(delivery_id, stack.settings)
        settled = delivery.deliver(delivery_id, stack.settings)  # nothing open: skipped
    assert first == {"delivery_uuid": again["delivery_uuid"], "channel": "in_app", "status": "delivered",
                     "attempts": 1, "skipped": False}
    assert (again["status"], again["attempts"], again["skipped"]) == ("delivered", 2, False)
    assert (settled["status"], settled["attempts"], settled["skipped"]) == ("delivered", 2, True)
    [notification] = rows(stack, Notification, Notification.recipient_uuid == buyer.uuid)
    [fanout] = rows(stack, NotificationFanout, NotificationFanout.recipient_uuid == buyer.uuid)
    assert (notification.fanout_id, notification.title, notification.content, notification.related_data,
            notification.created_at, notification.read) == (fanout.id, fanout.title, fanout.content,
                                                              fanout.related_data, fanout.created_at, False)


def test_a_channel_turned_off_after_the_fanout_ends_dead(stack, buyer, seller):
    from tasks.notifications import actions, delivery

    app = stack.apps["notifications"]
    with app.app_context():
        actions.plan_fanout(order_event("order.completed", buyer, seller), consumer="test")
    [pending] = rows(stack, NotificationDelivery, NotificationDelivery.recipient_uuid == buyer.uuid)
    set_preferences(stack, buyer, channels={"in_app": False})
    with app.app_context():
        result = delivery.deliver(pending.id, stack.settings)
        assert actions.record_fanout(pending.fanout_id) == "in_app:dead"
    assert (result["status"], result["attempts"], result["skipped"]) == ("dead", 1, False)
    [dead] = rows(stack, NotificationDelivery, NotificationDelivery.id == pending.id)
    assert dead.last_error == "the recipient turned this channel off" and dead.next_attempt_at is None
    assert dead.locked_until is None and inbox(stack, buyer) == []

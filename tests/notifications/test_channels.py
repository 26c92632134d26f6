"""Email through a real SMTP server and webhooks to a real HTTP receiver: signatures, retries with
backoff on 5xx, no retry on 4xx, dead (and dead-lettered) after the last try, manual redelivery."""
from __future__ import annotations

import hashlib
import hmac
import json

from models import NotificationDeadLetter, NotificationFanout, utcnow
from tests.notifications.support import deliveries, inbox, order_event, rows, set_preferences, update
from tests.support.waiting import stays, wait_for


def webhook_user(stack, receiver, user) -> None:
    prefs = set_preferences(stack, user, channels={"webhook": True, "in_app": False}, webhook_url=receiver.url)
    assert prefs["webhook_secret"].startswith("whsec_") and prefs["webhook_secret_set"] is True
    receiver.secret = prefs["webhook_secret"]


def settled(stack, user, channel: str) -> dict:
    return wait_for(lambda: [d for d in deliveries(stack, user, f"&channel={channel}")
                             if d["status"] in ("delivered", "dead")], what=f"the {channel} delivery settled")[0]


def test_email_goes_through_smtp_in_the_recipients_language(stack, notify_worker, mailbox, buyer, seller):
    set_preferences(stack, buyer, channels={"email": True}, email_address="li.lei@example.com", language="en")
    event = order_event("order.created", buyer, seller)
    notify_worker.send_task("notifications.fanout_event", args=[event])
    [message] = wait_for(lambda: mailbox.to("li.lei@example.com"), what="the email")
    delivery = settled(stack, buyer, "email")
    assert message["Subject"] == "Order placed"
    assert event["data"]["order_uuid"][:8] in message.get_content()
    assert message["Message-ID"] == f"<{delivery['delivery_uuid']}@cfmp>"  # receivers can dedupe on it
    assert delivery["status"] == "delivered" and delivery["attempts"] == 1 and delivery["delivered_at"]
    assert len(inbox(stack, buyer)) == 1  # in-app stays on unless turned off


def test_an_smtp_rejection_is_permanent(stack, notify_worker, mailbox, buyer, seller):
    mailbox.refuse["nobody@example.com"] = "550 5.1.1 No such user"
    set_preferences(stack, buyer, channels={"email": True, "in_app": False}, email_address="nobody@example.com")
    notify_worker.send_task("notifications.fanout_event", args=[order_event("order.paid", buyer, seller)])
    delivery = settled(stack, buyer, "email")
    assert (delivery["status"], delivery["attempts"]) == ("dead", 1)
    assert "550" in delivery["last_error"] and mailbox.messages == []


def test_a_webhook_is_signed_and_retried_until_it_succeeds(stack, notify_worker, receiver, buyer, seller):
    webhook_user(stack, receiver, buyer)
    receiver.script = [503, 502]  # then 200
    event = order_event("order.paid", buyer, seller)
    notify_worker.send_task("notifications.fanout_event", args=[event])
    delivery = wait_for(lambda: [d for d in deliveries(stack, buyer) if d["status"] == "delivered"],
                        what="the webhook delivered")[0]
    assert delivery["channel"] == "webhook" and delivery["attempts"] == 3
    assert "502" in delivery["last_error"] and delivery["next_attempt_at"] is None
    hooks = receiver.received
    assert len(hooks) == 3 and all(hook.signature_valid for hook in hooks)
    assert [hook.headers["X-Cfmp-Attempt"] for hook in hooks] == ["1", "2", "3"]
    assert len({hook.body for hook in hooks}) == 1  # the same bytes each time
    assert {hook.headers["X-Cfmp-Delivery"] for hook in hooks} == {delivery["delivery_uuid"]}
    header, body = hooks[0].headers["X-Cfmp-Signature"], hooks[0].body
    parts = dict(part.split("=", 1) for part in header.split(","))  # verified by hand, as a receiver would
    expected = hmac.new(receiver.secret.encode(), f"{parts['t']}.".encode() + body, hashlib.sha256).hexdigest()
    assert parts["v1"] == expected
    payload = json.loads(body)
    assert payload["event_id"] == event["event_id"] and payload["event_type"] == "order.paid"
    assert payload["notification"]["title"] == "支付成功"
    assert inbox(stack, buyer) == []  # in-app was turned off


def test_a_4xx_is_not_retried(stack, notify_worker, receiver, buyer, seller):
    webhook_user(stack, receiver, buyer)
    receiver.then = 410
    notify_worker.send_task("notifications.fanout_event", args=[order_event("order.created", buyer, seller)])
    delivery = settled(stack, buyer, "webhook")
    assert (delivery["status"], delivery["attempts"]) == ("dead", 1) and "410" in delivery["last_error"]
    stays(lambda: len(receiver.received) == 1, duration=0.4)
    [letter] = wait_for(lambda: rows(stack, NotificationDeadLetter), what="the dead letter")
    assert letter.task_name == "notifications.deliver_webhook" and letter.retries == 0


def test_dead_after_the_last_try_then_redelivered_by_hand(stack, notify_worker, receiver, buyer, seller):
    webhook_user(stack, receiver, buyer)
    receiver.then = 500
    notify_worker.send_task("notifications.fanout_event", args=[order_event("order.completed", buyer, seller)])
    delivery = settled(stack, buyer, "webhook")
    assert (delivery["status"], delivery["attempts"], delivery["max_attempts"]) == ("dead", 6, 6)
    assert len(receiver.received) == 6 and "500" in delivery["last_error"]
    [letter] = wait_for(lambda: rows(stack, NotificationDeadLetter), what="the dead letter")
    assert letter.task_name == "notifications.deliver_webhook" and letter.retries == 5
    assert "gave up after 6 attempts" in letter.error
    # The buyer's chord body never ran (its header task failed): the watchdog records that fan-out;
    # the seller's (in-app, delivered) was recorded by its own chord body.
    update(stack, NotificationFanout, NotificationFanout.id > 0, created_at=utcnow().replace(year=2020))
    assert notify_worker.send_task("notifications.retry_due_deliveries").get(timeout=10)["recorded"] == 1
    mine = rows(stack, NotificationFanout, NotificationFanout.recipient_uuid == buyer.uuid)[0]
    assert mine.outcome == "webhook:dead"

    receiver.then = 200
    api = stack.api(buyer.token)
    reply = api.post(f"/api/notifications/deliveries/{delivery['delivery_uuid']}/redeliver/", {})
    assert reply.status == 202 and reply.json["status"] == "pending" and reply.json["max_attempts"] == 12
    again = wait_for(lambda: [d for d in deliveries(stack, buyer) if d["status"] == "delivered"],
                     what="redelivered")
    assert again[0]["attempts"] == 7 and len(receiver.received) == 7 and receiver.received[-1].signature_valid
    assert api.post(f"/api/notifications/deliveries/{delivery['delivery_uuid']}/redeliver/", {}).status == 202
    wait_for(lambda: len(receiver.received) == 8 and deliveries(stack, buyer)[0]["status"] == "delivered",
             what="a delivered webhook redelivered once more")


def test_redelivery_is_mine_only_and_refused_while_pending(stack, buyer, seller, stranger):
    from tasks.notifications import actions

    with stack.apps["notifications"].app_context():  # pending rows; nothing sent, no worker involved
        actions.plan_fanout(order_event("order.created", buyer, seller), consumer="test")
    [delivery] = deliveries(stack, buyer)
    assert (delivery["status"], delivery["attempts"], delivery["channel"]) == ("pending", 0, "in_app")
    path = f"/api/notifications/deliveries/{delivery['delivery_uuid']}/redeliver/"
    assert stack.api(stranger.token).post(path, {}).json["error"] == "delivery_not_found"
    assert deliveries(stack, stranger) == []
    reply = stack.api(buyer.token).post(path, {})
    assert reply.status == 409 and reply.json["error"] == "delivery_in_progress"
    assert stack.api(buyer.token).post(path, {"force": True}).status == 422

"""New payments are refused with 503 `overloaded` while the risk and payments queues are backlogged
(api/payments/backlog.py): nothing is written, the Idempotency-Key is not claimed, and the same
request goes through once the queues are short again. The queues are real Redis lists, under a key
prefix of this test's that no worker drains."""
from __future__ import annotations

import time
import uuid
from types import SimpleNamespace

import pytest
import redis

from api.payments import backlog
from tests.payments.conftest import new_order
from tests.payments.test_payment_errors import payments_of
from tests.support.servers import closed_port, drop_keys


@pytest.fixture
def queues(pay, settings, monkeypatch):
    """`limit(n)` sets the payment service's PAYMENT_MAX_BACKLOG and points its check at a key
    prefix of this test's; `push(queue, count)` queues that many dummy tasks there."""
    prefix = f"probe-{uuid.uuid4().hex[:8]}:"
    client = redis.Redis.from_url(settings.broker_url)
    payments = pay.apps["payments"]

    def limit(tasks: int) -> None:
        monkeypatch.setitem(payments.config, "CFMP_SETTINGS", payments.config["CFMP_SETTINGS"].replace(
            celery_key_prefix=prefix, payment_max_backlog=tasks))

    def push(queue: str, count: int) -> None:
        client.rpush(f"{prefix}{queue}", *range(count))

    yield SimpleNamespace(limit=limit, push=push, drop=lambda queue: client.delete(f"{prefix}{queue}"))
    client.close()
    drop_keys(settings.broker_url, prefix)


def pay_order(pay, buyer, order: dict, headers: dict | None = None):
    return pay.api(buyer.token).post("/api/payments/", {"order_uuid": order["order_uuid"], "payment_method": "sandbox"},
                                     headers=headers)


def test_payments_are_refused_while_the_queues_are_backlogged(pay, queues, buyer, seller):
    queues.limit(3)
    order = new_order(pay, buyer, seller)
    queues.push("risk", 2)
    queues.push("payments", 2)
    refused = pay_order(pay, buyer, order, {"Idempotency-Key": "pay-1"})
    assert (refused.status, refused.json["error"]) == (503, "overloaded"), refused.json
    assert refused.json["details"] == {"queued_tasks": 4}
    assert refused.headers["Retry-After"] == str(backlog.RETRY_AFTER)
    assert payments_of(pay, order["order_uuid"]) == []

    queues.drop("payments")  # 2 queued: under the limit
    time.sleep(backlog.CACHE_SECONDS + 0.1)
    admitted = pay_order(pay, buyer, order, {"Idempotency-Key": "pay-1"})
    assert admitted.status == 201, admitted.json  # the key was not claimed by the refusal
    assert [p.payment_uuid for p in payments_of(pay, order["order_uuid"])] == [uuid.UUID(admitted.json["payment_uuid"])]


def test_the_limit_zero_admits_whatever_is_queued(pay, queues, buyer, seller):
    queues.limit(0)
    queues.push("risk", 10)
    reply = pay_order(pay, buyer, new_order(pay, buyer, seller))
    assert reply.status == 201, reply.json


def test_a_broker_whose_queues_cannot_be_read_admits(pay, buyer, seller, monkeypatch):
    """The check reads the queues through CFMP_SETTINGS' broker URL, pointed here at a closed port
    (the service's Celery app keeps its own connection, so the payment is still published)."""
    payments = pay.apps["payments"]
    monkeypatch.setitem(payments.config, "CFMP_SETTINGS", payments.config["CFMP_SETTINGS"].replace(
        broker_url=f"redis://127.0.0.1:{closed_port()}/0", payment_max_backlog=1))
    reply = pay_order(pay, buyer, new_order(pay, buyer, seller))
    assert reply.status == 201, reply.json

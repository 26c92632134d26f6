"""A payments worker killed with SIGKILL in the middle of a payment workflow (after the capture
committed, before its message was acknowledged): after another worker takes over, the workflow
completes (the order is paid) and nothing happened twice."""
from __future__ import annotations

import os
import signal
import uuid
from pathlib import Path

import pytest
import redis
import sqlalchemy as sa

from api.orders import create_app as orders_app
from api.payments import create_app as payments_app
from common.settings import Settings
from common.tokens import issue_token
from models import OrderEvent, Payment, PaymentOutbox, db
from tests.cli.procs import CliProcess, group_members
from tests.factories import order_body
from tests.support.client import Api
from tests.support.servers import close_celery, serve_in_thread
from tests.support.slow_capture import ENABLE, runs_key
from tests.support.waiting import wait_for

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("key_prefix")]
VISIBILITY = 4  # seconds; workers then look for orphaned messages every second
ROOT = Path(__file__).resolve().parents[2]
QUEUES = "orders,payments,risk,notifications"


def start_worker(tmp_path, env, name: str) -> CliProcess:
    args = ["-A", "workers.celery", "worker", "-Q", QUEUES, "-n", f"{name}@%h", "-P", "prefork", "-c", "1",
            "-I", "tests.support.slow_capture", "--without-mingle", "--without-gossip", "-l", "INFO"]
    return CliProcess(args, {**env, "PYTHONPATH": str(ROOT), ENABLE: "1"}, tmp_path, module="celery")


def ping(client, name: str):
    return client.control.ping(destination=[f"{name}@{os.uname().nodename}"], timeout=0.5)


def test_a_payment_workflow_survives_its_worker_killed_mid_capture_without_capturing_twice(migrated, client,
                                                                                           tmp_path):
    env = {**migrated, "BROKER_VISIBILITY_TIMEOUT": str(VISIBILITY), "SANDBOX_CALLBACK_DELAY": "0.2"}
    settings = Settings.from_env(env, dotenv_path=None)
    client.conf.broker_transport_options = {**client.conf.broker_transport_options, "visibility_timeout": VISIBILITY}
    apps = {"orders": orders_app(settings)}
    orders = serve_in_thread(apps["orders"])
    apps["payments"] = payments_app(settings.replace(upstreams={**settings.upstreams, "orders": orders.url}))
    payments = serve_in_thread(apps["payments"])
    env["PAYMENT_CALLBACK_BASE_URL"] = payments.url  # the sandbox calls the payment service back
    broker = redis.Redis.from_url(settings.broker_url)
    # Both workers run from the start: whichever takes the capture is killed the moment it has
    # committed, well inside the visibility timeout (a task outliving it is redelivered anyway).
    workers = {name: start_worker(tmp_path, env, name) for name in ("first", "second")}
    try:
        for name in workers:
            wait_for(lambda: ping(client, name), timeout=30, what=f"the {name} worker")
        buyer = uuid.uuid4()
        token = issue_token(settings, buyer)
        order = Api(orders.url, token).post("/api/orders/", order_body(uuid.uuid4()))
        assert order.status == 201, order.json
        payment = Api(payments.url, token).post("/api/payments/", {"order_uuid": order.json["order_uuid"],
                                                                   "payment_method": "sandbox"})
        assert payment.status == 201, payment.json
        with apps["payments"].app_context():
            payment_id = db.session.scalars(sa.select(Payment.id).where(
                Payment.payment_uuid == uuid.UUID(payment.json["payment_uuid"]))).one()
        key = runs_key(settings.celery_key_prefix, payment_id)
        runs = lambda: [int(pid) for pid in broker.lrange(key, 0, -1)]  # noqa: E731
        [victim] = wait_for(runs, timeout=30, interval=0.01, what="a worker to capture")
        [doomed] = [w for w in workers.values() if victim in group_members({w.popen.pid})]
        [survivor] = [w for w in workers.values() if w is not doomed]
        os.killpg(doomed.popen.pid, signal.SIGKILL)  # main process and children, no goodbye
        doomed.wait(timeout=10)
        paid = lambda: Api(orders.url, token).get(f"/api/orders/{order.json['order_uuid']}/").json  # noqa: E731
        wait_for(lambda: paid()["status"] == "paid", timeout=VISIBILITY + 40, what="the order paid after the kill")
        pids = runs()
        assert len(pids) == 2, pids  # the capture ran again, once
        assert pids[1] in group_members({survivor.popen.pid})  # by the other worker
        done = Api(payments.url, token).get(f"/api/payments/{payment.json['payment_uuid']}/").json
        assert done["status"] == "succeeded"
        with apps["payments"].app_context():
            captured = db.session.scalar(sa.select(sa.func.count()).select_from(PaymentOutbox).where(
                PaymentOutbox.aggregate_uuid == uuid.UUID(payment.json["payment_uuid"]),
                PaymentOutbox.event_type == "payment.succeeded"))
        with apps["orders"].app_context():
            paid_events = db.session.scalar(sa.select(sa.func.count()).select_from(OrderEvent).where(
                OrderEvent.to_status == "paid"))
        assert (captured, paid_events) == (1, 1)
    finally:
        for process in workers.values():
            if not process.closed:
                process.close()
        broker.close()
        for served in (orders, payments):
            served.stop()
        for app in apps.values():
            close_celery(app.extensions["celery"])

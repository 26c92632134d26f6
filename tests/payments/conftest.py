"""Wiring the running stack for payments: the payment service reaches the order service it runs
next to, and the sandbox provider calls back through the gateway, all over real HTTP."""
from __future__ import annotations

import datetime as dt
import uuid
from decimal import Decimal

import pytest
import sqlalchemy as sa

from models import Payment, RiskAssessment, SecurityPolicy, db
from tasks.payments.providers import ChargeRequest
from tests.factories import item, order_body
from tests.support.waiting import wait_for

CALLBACK_DELAY = 0.3  # seconds the sandbox waits before calling back (1 s by default)


@pytest.fixture(scope="session")
def wired(running, worker_app):
    """The stack's services get their ports only once served, so the settings that name them are
    set here: the payment service's order upstream, and the gateway as the callback base URL."""
    payments = running.apps["payments"]
    upstreams = {**running.settings.upstreams, "orders": running.services["orders"].url}
    payments.config["CFMP_SETTINGS"] = payments.config["CFMP_SETTINGS"].replace(upstreams=upstreams)
    worker_app.config["CFMP_SETTINGS"] = worker_app.config["CFMP_SETTINGS"].replace(
        payment_callback_base_url=running.gateway.url, sandbox_callback_delay=CALLBACK_DELAY)
    return running


@pytest.fixture
def pay(wired, worker):
    """The running system with a worker, emptied after the test."""
    yield wired
    wired.truncate()


@pytest.fixture
def admin(make_user):
    return make_user("admin")


def new_order(stack, buyer, seller, price: str = "99.50", quantity: int = 2, **overrides) -> dict:
    body = order_body(seller.uuid, items=[item(product_price=price, quantity=quantity)], **overrides)
    reply = stack.api(buyer.token).post("/api/orders/", body)
    assert reply.status == 201, reply.json
    return reply.json


def start_payment(stack, buyer, order: dict, method: str = "sandbox") -> dict:
    reply = stack.api(buyer.token).post("/api/payments/", {"order_uuid": order["order_uuid"], "payment_method": method})
    assert reply.status == 201, reply.json
    return reply.json


def payment_status(stack, user, payment_uuid: str) -> str:
    return stack.api(user.token).get(f"/api/payments/{payment_uuid}/").json["status"]


def wait_payment(stack, user, payment_uuid: str, status: str, timeout: float = 15) -> dict:
    return wait_for(lambda: (p := stack.api(user.token).get(f"/api/payments/{payment_uuid}/").json)["status"] == status
                    and p, timeout=timeout, what=f"payment {status}")


def order_status(stack, user, order_uuid: str) -> str:
    return stack.api(user.token).get(f"/api/orders/{order_uuid}/").json["status"]


def assessment_of(stack, payment_uuid: str) -> RiskAssessment | None:
    with stack.apps["payments"].app_context():
        found = db.session.scalars(sa.select(RiskAssessment).join(Payment, RiskAssessment.payment_id == Payment.id)
                                   .where(Payment.payment_uuid == uuid.UUID(payment_uuid))).first()
        if found is not None:
            db.session.expunge(found)
        return found


def policy_uuid(stack, admin, name: str) -> str:
    policies = stack.api(admin.token).get("/api/risk/policies/").json["results"]
    return next(p["policy_uuid"] for p in policies if p["name"] == name)


def set_params(stack, name: str, params: str) -> None:
    """Write a policy's params as raw text, bypassing validation (to break a rule on purpose)."""
    with stack.apps["payments"].app_context():
        db.session.execute(sa.update(SecurityPolicy).where(SecurityPolicy.name == name).values(params_json=params))
        db.session.commit()


def paid_order(stack, buyer, seller, price: str = "100.00") -> tuple[dict, dict]:
    """An order paid through the sandbox: (order, succeeded payment)."""
    order = new_order(stack, buyer, seller, price=price, quantity=1)
    payment = wait_payment(stack, buyer, start_payment(stack, buyer, order)["payment_uuid"], "succeeded")
    wait_for(lambda: order_status(stack, buyer, order["order_uuid"]) == "paid", what="the order paid")
    return order, payment


def refunds_of(stack, user, payment_uuid: str) -> list[dict]:
    return stack.api(user.token).get(f"/api/payments/{payment_uuid}/refunds/?page_size=100").json["results"]


def wait_refund(stack, user, payment_uuid: str, refund_uuid: str, status: str, timeout: float = 15) -> dict:
    return wait_for(lambda: next((r for r in refunds_of(stack, user, payment_uuid)
                                  if r["refund_uuid"] == refund_uuid and r["status"] == status), None),
                    timeout=timeout, what=f"refund {status}")


def inbox_about(stack, user, related_id: str) -> list[dict]:
    """The user's notifications about `related_id`, read through the gateway."""
    inbox = stack.api(user.token).get("/api/notifications/?page_size=100").json["results"]
    return [n for n in inbox if n["related_id"] == related_id]


def charge_request(amount: str = "88.80", currency: str = "CNY",
                   expires_at: dt.datetime | None = None) -> ChargeRequest:
    """What a provider adapter is asked to charge, for a payment of its own (the adapter tests)."""
    return ChargeRequest(1, str(uuid.uuid4()), Decimal(amount), currency, expires_at)


def from_now(seconds: float) -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc) + dt.timedelta(seconds=seconds)

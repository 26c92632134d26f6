"""Signed messages across the trust boundary: provider callbacks we receive (forged, stale, replayed,
malformed) and webhooks we send (verifiable by a receiver that has only its secret).

tests/payments/test_payment_errors.py covers a forged, unsigned, tampered and replayed sandbox
callback; tests/notifications/test_templates.py the signing helpers themselves.
"""
from __future__ import annotations

import hashlib
import hmac
import time
from decimal import Decimal

import sqlalchemy as sa

from models import PaymentCallback, db
from tasks.payments.providers.sandbox import SIGNATURE_HEADER, SandboxProvider
from tests.factories import order_body
from tests.payments.conftest import new_order, start_payment, wait_payment
from tests.support.waiting import wait_for

CALLBACK = "/api/payments/callback/sandbox/"


def test_stale_malformed_and_foreign_callback_signatures_are_401_and_change_nothing(pay, buyer, seller):
    """A payment the sandbox never settles (.66): only a valid callback could make it succeed."""
    payment = start_payment(pay, buyer, new_order(pay, buyer, seller, price="100.66", quantity=1))
    payment = wait_payment(pay, buyer, payment["payment_uuid"], "processing")
    sandbox = SandboxProvider(pay.settings)
    raw = sandbox.callback_body(payment["payment_data"]["provider_reference"], Decimal("100.66"), "CNY")
    raw = raw.replace(b'"status":"processing"', b'"status":"succeeded"')  # what a forger would want
    now = int(time.time())
    good_mac = sandbox.sign(raw, now).split("v1=", 1)[1]
    signatures = {
        "captured six minutes ago": sandbox.sign(raw, now - 360),
        "dated six minutes ahead": sandbox.sign(raw, now + 360),
        "signed over another timestamp": f"t={now - 1},v1={good_mac}",
        "no timestamp": f"v1={good_mac}",
        "no mac": f"t={now}",
        "empty": "",
        "mac not hex": f"t={now},v1=zz",
        "mac not ascii": f"t={now},v1=\u00e9\u00e9",
        "timestamp not ascii digits": f"t=\u00b2{now},v1={good_mac}",
        "timestamp of 5000 digits": f"t={'9' * 5000},v1={good_mac}",
    }
    gateway = pay.api()
    for name, signature in signatures.items():
        reply = gateway.post(CALLBACK, raw=raw, headers={SIGNATURE_HEADER: signature.encode("latin-1")})
        refused = (reply.status, (reply.json or {}).get("error"))
        assert refused == (401, "invalid_signature"), (name, reply.raw)
    with pay.apps["payments"].app_context():
        assert db.session.scalar(sa.select(sa.func.count()).select_from(PaymentCallback)) == 0
    still = pay.api(buyer.token).get(f"/api/payments/{payment['payment_uuid']}/").json
    assert still["status"] == "processing"


def receiver_accepts(headers: dict, body: bytes, secret: str, now: float, tolerance: int = 300) -> bool:
    """The receiver's procedure as the README gives it, written here without the code under test."""
    fields = [part.split("=", 1) for part in headers.get("X-Cfmp-Signature", "").split(",") if "=" in part]
    stamps = [value for key, value in fields if key == "t"]
    if len(stamps) != 1 or not (stamps[0].isascii() and stamps[0].isdigit()):
        return False
    if abs(now - int(stamps[0])) > tolerance:
        return False
    expected = hmac.new(secret.encode(), stamps[0].encode() + b"." + body, hashlib.sha256).hexdigest()
    return any(hmac.compare_digest(expected.encode(), value.encode()) for key, value in fields if key == "v1")


def test_a_delivered_webhook_verifies_with_its_secret_only_and_not_when_replayed_late(
        pay, notify_worker, receiver, buyer, seller):
    prefs = pay.api(buyer.token).request("PUT", "/api/notifications/preferences/",
                                         {"channels": {"webhook": True}, "webhook_url": receiver.url})
    secret = prefs.json["webhook_secret"]
    assert pay.api(buyer.token).post("/api/orders/", order_body(seller.uuid)).status == 201
    [hook] = wait_for(lambda: receiver.received, what="the order.created webhook")
    headers = {name.title(): value for name, value in hook.headers.items()}
    now = time.time()
    assert receiver_accepts(headers, hook.body, secret, now)
    assert headers["X-Cfmp-Delivery"] and headers["X-Cfmp-Event"] == "order.created"
    assert not receiver_accepts(headers, hook.body, "whsec_" + "0" * 64, now)  # someone else's secret
    assert not receiver_accepts(headers, hook.body.replace(b"order.created", b"order.paid"), secret, now)
    assert not receiver_accepts(headers, hook.body, secret, now + 301)  # the same request, replayed late

"""Fixtures of the security checklist: the running stack with a worker (`pay`, `admin`, from the
payment tests) and the gateway lab with an echo upstream (from the gateway tests), where what the
gateway forwards can be seen."""
import pytest

from tests.gateway.conftest import auth, echo, gateway, lab  # noqa: F401  (fixtures)
from tests.notifications.conftest import notify_worker, receiver, smtp_server, webhook_server  # noqa: F401
from tests.payments.conftest import admin, paid_order, pay, wait_refund, wired  # noqa: F401  (fixtures)
from tests.support.waiting import wait_for


@pytest.fixture
def world(pay, buyer, seller, admin):
    """The buyer's paid order, payment, refund, notifications and deliveries, and the ids of each."""
    order, payment = paid_order(pay, buyer, seller)
    api = pay.api(buyer.token)
    refunding = pay.api(admin.token)  # a payer asks through its order; the seller or an admin refunds
    refund = refunding.post(f"/api/payments/{payment['payment_uuid']}/refund/", {"amount": "1.00"}).json
    wait_refund(pay, buyer, payment["payment_uuid"], refund["refund_uuid"], "succeeded")
    prefs = api.request("PUT", "/api/notifications/preferences/", {"email_address": "buyer@example.com"})
    assert prefs.status == 200, prefs.json
    notes = wait_for(lambda: api.get("/api/notifications/").json["results"], what="the buyer notified")
    deliveries = wait_for(lambda: api.get("/api/notifications/deliveries/").json["results"],
                          what="deliveries")
    risk = pay.api(admin.token)
    return {
        "order_uuid": order["order_uuid"], "payment_uuid": payment["payment_uuid"],
        "refund_uuid": refund["refund_uuid"], "notification_uuid": notes[0]["notification_uuid"],
        "delivery_uuid": deliveries[0]["delivery_uuid"],
        "assessment_uuid": risk.get("/api/risk/assessments/").json["results"][0]["assessment_uuid"],
        "policy_uuid": risk.get("/api/risk/policies/").json["results"][0]["policy_uuid"],
    }



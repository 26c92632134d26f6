"""Another user's resources, probed on every documented operation: 404 (403 on the admin-only risk
API), and nothing changes.

The operations come from each service's own `/openapi.json`, so an endpoint added later is probed
without editing this file; `test_every_protected_route_is_probed` ties them to the gateway's route
table. tests/api/test_visibility.py and the payment and inbox tests check the same rule by hand.
"""
from __future__ import annotations

import re

from gateway.routes import ROUTES
from tests.payments.conftest import refunds_of

SERVICES = ("orders", "payments", "notifications")
PATH_PARAM = re.compile(r"{(\w+)}")


def operations(stack) -> list[tuple[str, str]]:
    """(METHOD, path template) of every documented operation of every service."""
    found = []
    for service in SERVICES:
        spec = stack.direct(service=service).get("/openapi.json").json
        found += [(method.upper(), path) for path, ops in spec["paths"].items() for method in ops]
    return found


def snapshot(stack, buyer, admin, ids) -> dict:
    """Everything the probes could have touched, as its owner (and the admin) sees it."""
    mine, risk = stack.api(buyer.token), stack.api(admin.token)
    reads = {
        "order": mine.get(f"/api/orders/{ids['order_uuid']}/"),
        "events": mine.get(f"/api/orders/{ids['order_uuid']}/events/"),
        "payment": mine.get(f"/api/payments/{ids['payment_uuid']}/"),
        "refunds": mine.get(f"/api/payments/{ids['payment_uuid']}/refunds/"),
        "inbox": mine.get("/api/notifications/"),
        "deliveries": mine.get("/api/notifications/deliveries/"),
        "preferences": mine.get("/api/notifications/preferences/"),
        "assessment": risk.get(f"/api/risk/assessments/{ids['assessment_uuid']}/"),
        "policies": risk.get("/api/risk/policies/"),
    }
    assert all(reply.status == 200 for reply in reads.values()), {k: r.status for k, r in reads.items()}
    return {name: reply.json for name, reply in reads.items()}


def test_other_users_resources_are_404_everywhere_and_stay_as_they_were(
        world, pay, buyer, seller, stranger, admin):
    before = snapshot(pay, buyer, admin, world)
    probed = 0
    for method, template in operations(pay):
        names = PATH_PARAM.findall(template)
        if not names or template.startswith("/api/payments/callback/"):
            continue
        path = PATH_PARAM.sub(lambda m: world[m[1]], template)
        body = {} if method in ("POST", "PUT", "PATCH") else None
        admin_only = template.startswith("/api/risk/")
        # The seller is related to the order and its payment (a relation, not a role: it may read the
        # order, refuse its buyer's acts); the buyer's inbox and delivery log are the buyer's alone.
        intruders = [stranger, seller] if template.startswith("/api/notifications/") else [stranger]
        for intruder in intruders:
            reply = pay.api(intruder.token).request(method, path, body=body)
            not_found = f"{names[0].removesuffix('_uuid')}_not_found"
            expected = (403, "admin_required") if admin_only else (404, not_found)
            assert (reply.status, reply.json["error"]) == expected, (method, template, reply.json)
            probed += 1
    assert probed >= 16
    for method, path in [("POST", f"/api/orders/{world['order_uuid']}/cancel/"),
                         ("POST", f"/api/orders/{world['order_uuid']}/complete/")]:
        assert pay.api(seller.token).request(method, path, body={}).json["error"] == "not_order_buyer"
    assert refunds_of(pay, buyer, world["payment_uuid"])[0]["refund_uuid"] == world["refund_uuid"]
    assert snapshot(pay, buyer, admin, world) == before


def test_lists_never_show_another_users_rows(world, pay, stranger, seller):
    """A stranger's lists mention nothing of the buyer's; the seller's mention the sale (the order,
    its payment and refund are in the seller's notifications), never the buyer's own inbox rows."""
    everything = [value for key, value in world.items() if key not in ("policy_uuid", "assessment_uuid")]
    personal = [world["notification_uuid"], world["delivery_uuid"]]
    listed = 0
    for method, template in operations(pay):
        if method != "GET" or PATH_PARAM.search(template):
            continue
        for intruder, owned in ((stranger, everything), (seller, personal)):
            reply = pay.api(intruder.token).get(template)
            assert reply.status in (200, 403), (template, reply.json)
            assert [value for value in owned if value in reply.raw.decode()] == [], (template, intruder)
            listed += 1
    assert listed >= 16


def test_every_protected_route_is_probed(pay):
    documented = [template for _, template in operations(pay) if PATH_PARAM.search(template)]
    for route in ROUTES:
        if route.auth:
            assert any(template.startswith(route.prefix) for template in documented), route.prefix

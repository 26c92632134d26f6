"""The risk admin API: seeded policies an admin tunes, validated per rule; assessments filtered."""
from __future__ import annotations

import uuid

from tests.payments.conftest import new_order, policy_uuid, start_payment, wait_payment


def test_policies_are_seeded_created_and_edited_with_validation(pay, admin):
    api = pay.api(admin.token)
    seeded = api.get("/api/risk/policies/").json
    assert seeded["count"] == 5
    assert {p["rule"] for p in seeded["results"]} == {"amount", "velocity", "failures", "addresses", "deny_list"}
    body = {"name": "huge_amount", "rule": "amount", "weight": 100, "params": {"threshold": "50000.00"}}
    created = api.post("/api/risk/policies/", body, headers={"Idempotency-Key": "p-1"})
    assert created.status == 201 and created.json["params"] == {"threshold": "50000.00"} and created.json["enabled"]
    replayed = api.post("/api/risk/policies/", body, headers={"Idempotency-Key": "p-1"})
    assert replayed.status == 201 and replayed.headers.get("Idempotent-Replayed") == "true"
    taken = api.post("/api/risk/policies/", body)
    assert (taken.status, taken.json["error"]) == (409, "policy_name_taken")
    bad = api.post("/api/risk/policies/", {**body, "name": "other", "params": {"threshold": "-1"}})
    assert bad.status == 422 and "params" in bad.json["details"]
    wrong_rule = api.post("/api/risk/policies/", {**body, "name": "other", "rule": "astrology"})
    assert wrong_rule.status == 422 and "rule" in wrong_rule.json["details"]
    target = policy_uuid(pay, admin, "payment_velocity")
    edited = api.request("PATCH", f"/api/risk/policies/{target}/", {"weight": 10, "enabled": False})
    assert edited.status == 200 and (edited.json["weight"], edited.json["enabled"]) == (10, False)
    bad_edit = api.request("PATCH", f"/api/risk/policies/{target}/", {"params": {"max_count": "five"}})
    assert bad_edit.status == 422
    assert api.request("PATCH", f"/api/risk/policies/{uuid.uuid4()}/", {"weight": 1}).status == 404
    assert api.get("/api/risk/policies/").json["count"] == 6


def test_disabled_policies_do_not_run_and_assessments_filter(pay, admin, buyer, seller):
    api = pay.api(admin.token)
    for name in ("payment_velocity", "many_addresses"):
        api.request("PATCH", f"/api/risk/policies/{policy_uuid(pay, admin, name)}/", {"enabled": False})
    payment = wait_payment(pay, buyer, start_payment(pay, buyer, new_order(pay, buyer, seller))["payment_uuid"],
                           "succeeded")
    allowed = api.get("/api/risk/assessments/?decision=allow").json["results"]
    [mine] = [a for a in allowed if a["payment_uuid"] == payment["payment_uuid"]]
    assert {r["policy"] for r in mine["reasons"]["rules"]} == {"large_amount", "repeated_failures", "deny_list"}
    assert api.get("/api/risk/assessments/?decision=block").json["count"] == 0
    assert api.get("/api/risk/assessments/?level=bogus").status == 422
    assert api.get(f"/api/risk/assessments/{uuid.uuid4()}/").status == 404


def test_openapi_documents_the_payment_routes(pay):
    spec = pay.direct(service="payments").get("/openapi.json").json
    documented = {(path, method) for path, ops in spec["paths"].items() for method in ops}
    assert {("/api/payments/", "post"), ("/api/payments/", "get"), ("/api/payments/{payment_uuid}/", "get"),
            ("/api/payments/{payment_uuid}/cancel/", "post"), ("/api/payments/callback/{provider}/", "post"),
            ("/api/risk/assessments/", "get"), ("/api/risk/assessments/{assessment_uuid}/approve/", "post"),
            ("/api/risk/policies/", "post"), ("/api/risk/policies/{policy_uuid}/", "patch")} <= documented
    assert spec["paths"]["/api/payments/callback/{provider}/"]["post"]["security"] == []
    assert pay.direct(service="payments").get("/ready").json["checks"] == {"database:payments": "ok", "broker": "ok"}

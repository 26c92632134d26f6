"""/health, /ready and /openapi.json of the order service."""
from __future__ import annotations

from api.orders import create_app
from tests.support.servers import closed_port


def test_ready_checks_database_and_broker(stack):
    reply = stack.direct().get("/ready")
    assert reply.status == 200
    assert reply.json["checks"] == {"database:orders": "ok", "broker": "ok"}


def test_not_ready_without_broker(settings):
    app = create_app(settings.replace(broker_url=f"redis://127.0.0.1:{closed_port()}/0"))
    reply = app.test_client().get("/ready")
    assert reply.status_code == 503
    body = reply.get_json()
    assert body["error"] == "not_ready" and body["details"]["broker"].startswith("error")
    assert app.test_client().get("/health").status_code == 200


def test_openapi_documents_every_order_route(stack):
    spec = stack.direct().get("/openapi.json").json
    assert spec["openapi"].startswith("3.")
    documented = {(path, method) for path, ops in spec["paths"].items() for method in ops}
    expected = {("/api/orders/", "post"), ("/api/orders/", "get"), ("/api/orders/sold/", "get"),
                ("/api/orders/stats/", "get"), ("/api/orders/{order_uuid}/", "get"),
                ("/api/orders/{order_uuid}/events/", "get"), ("/api/orders/{order_uuid}/cancel/", "post"),
                ("/api/orders/{order_uuid}/complete/", "post")}
    assert expected <= documented
    create = spec["paths"]["/api/orders/"]["post"]
    schema_ref = create["requestBody"]["content"]["application/json"]["schema"]["$ref"]
    body_schema = spec["components"]["schemas"][schema_ref.rsplit("/", 1)[1]]
    assert {"seller_uuid", "items", "shipping_name"} <= set(body_schema["required"])
    assert body_schema.get("additionalProperties") is False
    assert create["security"] == [{"bearerAuth": []}]
    assert "201" in create["responses"] and "422" in create["responses"]

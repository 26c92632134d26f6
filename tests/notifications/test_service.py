"""The notification service's plumbing: /ready, /openapi.json, and an unread count served by its index."""
from __future__ import annotations

import uuid

import sqlalchemy as sa

from models import db


def test_ready_checks_its_database_and_the_broker(stack):
    reply = stack.direct(service="notifications").get("/ready")
    assert reply.status == 200
    assert reply.json["checks"] == {"database:notifications": "ok", "broker": "ok"}
    assert stack.direct(service="notifications").get("/health").json["service"] == "notifications"


def test_openapi_documents_every_route(stack):
    spec = stack.direct(service="notifications").get("/openapi.json").json
    documented = {(path, method) for path, ops in spec["paths"].items() for method in ops}
    base = "/api/notifications"
    assert documented == {
        (f"{base}/", "get"), (f"{base}/{{notification_uuid}}/", "get"),
        (f"{base}/{{notification_uuid}}/", "delete"),
        (f"{base}/{{notification_uuid}}/read/", "post"), (f"{base}/read-all/", "post"),
        (f"{base}/unread-count/", "get"), (f"{base}/preferences/", "get"), (f"{base}/preferences/", "put"),
        (f"{base}/deliveries/", "get"), (f"{base}/deliveries/{{delivery_uuid}}/redeliver/", "post"),
    }
    assert "204" in spec["paths"][f"{base}/{{notification_uuid}}/"]["delete"]["responses"]
    assert "202" in spec["paths"][f"{base}/deliveries/{{delivery_uuid}}/redeliver/"]["post"]["responses"]


def test_the_unread_count_uses_the_recipient_read_index(stack):
    """Not a scan: the query plan names the (recipient_uuid, is_read) index on both backends."""
    from api.notifications import queries

    app = stack.apps["notifications"]
    with app.app_context():
        engine = db.engines["notifications"]
        statement = sa.select(sa.func.count()).select_from(queries.Notification).where(
            queries.Notification.recipient_uuid == uuid.uuid4(), queries.Notification.read == sa.false())
        compiled = statement.compile(engine, compile_kwargs={"literal_binds": True})
        sql = str(compiled)
        explain = "EXPLAIN QUERY PLAN " if engine.dialect.name == "sqlite" else "EXPLAIN "
        with engine.connect() as connection:
            plan = " ".join(str(cell) for row in connection.execute(sa.text(explain + sql)) for cell in row)
    assert "ix_notifications_recipient_read" in plan, plan

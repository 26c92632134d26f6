"""Published outbox rows are marked by one writer thread per process, many rows per UPDATE."""
from __future__ import annotations

import logging
import time
import uuid

import sqlalchemy as sa

from models import OrderOutbox, db, utcnow
from tasks.outbox_marks import PublishedMarks
from tests.support.servers import closed_port
from tests.support.waiting import wait_for


def unpublished_rows(app, count: int) -> list[int]:
    """Outbox rows inserted behind the ORM's back, so no request publishes or marks them."""
    with app.app_context():
        ids = []
        for _ in range(count):
            row = OrderOutbox.new("test.unsubscribed", uuid.uuid4(), {})
            result = db.session.execute(sa.insert(OrderOutbox).values(
                event_id=row.event_id, event_type=row.event_type, aggregate_uuid=row.aggregate_uuid,
                payload=row.payload, created_at=utcnow(), attempts=0))
            ids.append(result.inserted_primary_key[0])
        db.session.commit()
        return ids


def marked(app, ids: list[int]) -> int:
    with app.app_context():
        return db.session.scalar(sa.select(sa.func.count()).select_from(OrderOutbox).where(
            OrderOutbox.id.in_(ids), OrderOutbox.published_at.is_not(None)))


def test_marks_handed_in_together_share_one_update(stack):
    app = stack.orders_app
    ids = unpublished_rows(app, 3)
    updates: list[str] = []
    with app.app_context():
        engine = db.engines["orders"]

    def count(conn, cursor, statement, parameters, *_):
        values = parameters.values() if isinstance(parameters, dict) else parameters or ()
        mine = any(isinstance(value, int) and value in ids for value in values)  # not another test's rows
        if statement.lstrip().upper().startswith("UPDATE ORDER_OUTBOX") and mine:
            updates.append(statement)

    sa.event.listen(engine, "before_cursor_execute", count)
    try:
        marks = PublishedMarks(delay=0.3)
        for one in ids:  # as three requests finishing 50 ms apart, within the delay
            marks.add(engine, OrderOutbox, [one])
            time.sleep(0.05)
        wait_for(lambda: marked(app, ids) == 3, what="the three rows to be marked")
    finally:
        sa.event.remove(engine, "before_cursor_execute", count)
    assert len(updates) == 1


def test_a_mark_the_database_refuses_is_left_to_the_relay(stack, caplog):
    caplog.set_level(logging.WARNING, logger="tasks.outbox_marks")
    app = stack.orders_app
    ids = unpublished_rows(app, 1)
    away = sa.create_engine(f"mysql+pymysql://nobody@127.0.0.1:{closed_port()}/nowhere")
    marks = PublishedMarks(delay=60)  # its thread never gets to it: flush by hand
    marks.add(away, OrderOutbox, ids)
    marks.flush()  # does not raise
    assert marked(app, ids) == 0
    assert any("1 published order_outbox row(s) not marked" in r.getMessage() for r in caplog.records)
    marks.flush()  # the failed mark is not retried here: the relay publishes the row again
    assert sum("not marked" in r.getMessage() for r in caplog.records) == 1

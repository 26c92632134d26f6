"""`Order.transition` leaves the instance as the row it wrote, without reading the row back."""
from __future__ import annotations

import pytest
import sqlalchemy as sa

from models import IllegalTransition, Order, OrderStatus, db, utcnow
from models.direct_insert import insert_new
from models.sessions import connection_for
from tests.factories import order_row


def _pending_order() -> Order:
    order = order_row()
    insert_new(connection_for(Order), [order])
    db.session.commit()
    return db.session.get(Order, order.id)


def test_a_transition_keeps_what_it_wrote_and_reads_back_only_the_version(stack):
    with stack.orders_app.app_context():
        order = _pending_order()
        statements = []

        def record(_conn, _cursor, statement, *_args) -> None:
            statements.append(statement.split()[0].upper())

        sa.event.listen(db.engines["orders"], "before_cursor_execute", record)
        try:
            paid_at = utcnow()
            order.transition(OrderStatus.PAID, payment_method="sandbox", payment_time=paid_at)
            assert (order.status, order.payment_method, order.payment_time) == (OrderStatus.PAID, "sandbox", paid_at)
            assert statements == ["UPDATE"]  # the fields it wrote are not read back
            assert order.version == 2
            assert statements == ["UPDATE", "SELECT"]  # the version is: the database computed it
        finally:
            sa.event.remove(db.engines["orders"], "before_cursor_execute", record)
        db.session.commit()
        written = {c: getattr(order, c) for c in ("status", "payment_method", "payment_time", "updated_at", "version")}
        db.session.expire_all()
        assert {c: getattr(db.session.get(Order, order.id), c) for c in written} == written


def test_a_lost_race_reports_the_status_the_winner_left(stack):
    with stack.orders_app.app_context():
        order = _pending_order()
        db.session.execute(sa.update(Order).where(Order.id == order.id).values(status=OrderStatus.CANCELLED))
        with pytest.raises(IllegalTransition) as lost:
            order.transition(OrderStatus.PAID, payment_method="sandbox", payment_time=utcnow())
        assert order.status is OrderStatus.CANCELLED and lost.value.current is OrderStatus.CANCELLED

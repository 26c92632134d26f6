"""`insert_new` leaves rows and instances as a flush would, in the session's transaction."""
from __future__ import annotations

import uuid
from decimal import Decimal

import pytest
import sqlalchemy as sa

from models import Order, OrderItem, db
from models.direct_insert import insert_new
from models.sessions import connection_for
from tests.factories import order_row


def _connection():
    return connection_for(Order)


def test_one_instance_gets_its_key_and_defaults_and_reads_back_the_same(stack):
    with stack.orders_app.app_context():
        order = order_row(remark="ring twice")
        insert_new(_connection(), [order])
        db.session.commit()
        assert order.id is not None
        # Python-side defaults are on the instance, as a flush leaves them
        assert (order.currency, order.version, order.shipping_postal_code) == ("CNY", 1, "")
        assert order.created_at is not None and order.created_at.tzinfo is not None
        assert order.cancel_reason is None
        stored = db.session.get(Order, order.id)
        assert stored is not order  # never added to the session
        for column in ("order_uuid", "buyer_uuid", "total_amount", "currency", "status", "remark", "version",
                       "created_at", "updated_at", "cancel_reason", "payment_time"):
            assert getattr(stored, column) == getattr(order, column), column
        assert isinstance(stored.total_amount, Decimal)


def test_several_instances_are_one_statement_and_all_stored(stack):
    with stack.orders_app.app_context():
        order = order_row()
        connection = _connection()
        insert_new(connection, [order])
        items = [OrderItem(order_id=order.id, product_uuid=uuid.uuid4(), product_name=f"item {n}",
                           product_price=Decimal("0.10") * n, quantity=n) for n in range(1, 4)]
        statements = []
        sa.event.listen(connection, "before_cursor_execute", lambda *args: statements.append(args[2]))
        insert_new(connection, items)
        db.session.commit()
        assert len(statements) == 1
        stored = db.session.scalars(sa.select(OrderItem).where(OrderItem.order_id == order.id)
                                    .order_by(OrderItem.id)).all()
        assert [(i.product_name, i.product_price, i.quantity, i.product_image) for i in stored] == [
            ("item 1", Decimal("0.10"), 1, ""), ("item 2", Decimal("0.20"), 2, ""), ("item 3", Decimal("0.30"), 3, "")]


def test_the_rows_roll_back_with_the_session(stack):
    with stack.orders_app.app_context():
        order = order_row()
        insert_new(_connection(), [order])
        db.session.rollback()
        assert db.session.scalar(sa.select(sa.func.count()).select_from(Order)
                                 .where(Order.order_uuid == order.order_uuid)) == 0


def test_a_sql_expression_default_is_refused_not_guessed():
    table = sa.Table("t", sa.MetaData(), sa.Column("id", sa.Integer, primary_key=True),
                     sa.Column("at", sa.DateTime, default=sa.func.now()))

    class Row:
        pass

    sa.orm.registry().map_imperatively(Row, table)
    with pytest.raises(TypeError, match="SQL defaults"):
        insert_new(None, [Row()])

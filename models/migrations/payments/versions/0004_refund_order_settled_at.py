"""refunds.order_settled_at: when the order side of a refund finished

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-10 09:00:00
"""
import sqlalchemy as sa
from alembic import op

import models.base

revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('refunds', schema=None) as batch_op:
        batch_op.add_column(sa.Column('order_settled_at', models.base.UTCDateTime(), nullable=True))
    # Refunds settled before this column existed went their whole way (or were seen to by hand).
    op.execute("UPDATE refunds SET order_settled_at = COALESCE(refunded_at, updated_at) "
               "WHERE status = 'succeeded'")


def downgrade() -> None:
    with op.batch_alter_table('refunds', schema=None) as batch_op:
        batch_op.drop_column('order_settled_at')

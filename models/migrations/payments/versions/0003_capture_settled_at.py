"""payments.capture_settled_at: when the order side of a capture finished

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-25 05:00:00
"""
import sqlalchemy as sa
from alembic import op

import models.base

revision = '0003'
down_revision = '0002'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('payments', schema=None) as batch_op:
        batch_op.add_column(sa.Column('capture_settled_at', models.base.UTCDateTime(), nullable=True))
    # Captures made before this column existed went their whole way (or were flagged by hand).
    op.execute("UPDATE payments SET capture_settled_at = paid_at WHERE paid_at IS NOT NULL")


def downgrade() -> None:
    with op.batch_alter_table('payments', schema=None) as batch_op:
        batch_op.drop_column('capture_settled_at')

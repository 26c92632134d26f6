"""refunds, and the payment's reserved and refunded amounts

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-02 10:00:00
"""
import sqlalchemy as sa
from alembic import op

import models.base

revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('payments', schema=None) as batch_op:
        # server_default fills the rows that exist; the model gives every new row its own value.
        batch_op.add_column(sa.Column('refund_reserved', sa.Numeric(precision=12, scale=2), nullable=False,
                                      server_default='0'))
        batch_op.add_column(sa.Column('refunded_amount', sa.Numeric(precision=12, scale=2), nullable=False,
                                      server_default='0'))
    with op.batch_alter_table('payments', schema=None) as batch_op:
        batch_op.alter_column('refund_reserved', server_default=None)
        batch_op.alter_column('refunded_amount', server_default=None)

    op.create_table('refunds',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('refund_uuid', sa.Uuid(), nullable=False),
    sa.Column('payment_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('amount', sa.Numeric(precision=12, scale=2), nullable=False),
    sa.Column('currency', sa.String(length=3), nullable=False),
    sa.Column('reason', sa.String(length=255), nullable=False),
    sa.Column('status', sa.Enum('pending', 'processing', 'succeeded', 'failed', name='refundstatus',
                                native_enum=False, length=32), nullable=False),
    sa.Column('requested_by', sa.Uuid(), nullable=True),
    sa.Column('request_key', sa.String(length=128), nullable=True),
    sa.Column('provider_outcome', sa.String(length=32), nullable=True),
    sa.Column('provider_reference', sa.String(length=128), nullable=True),
    sa.Column('failure_reason', sa.String(length=255), nullable=True),
    sa.Column('refunded_at', models.base.UTCDateTime(), nullable=True),
    sa.Column('created_at', models.base.UTCDateTime(), nullable=False),
    sa.Column('updated_at', models.base.UTCDateTime(), nullable=False),
    sa.ForeignKeyConstraint(['payment_id'], ['payments.id'], name=op.f('fk_refunds_payment_id_payments'),
                            ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_refunds')),
    sa.UniqueConstraint('refund_uuid', name=op.f('uq_refunds_refund_uuid')),
    sa.UniqueConstraint('request_key', name=op.f('uq_refunds_request_key'))
    )
    with op.batch_alter_table('refunds', schema=None) as batch_op:
        batch_op.create_index('ix_refunds_payment_created', ['payment_id', 'created_at'], unique=False)
        batch_op.create_index('ix_refunds_status_updated', ['status', 'updated_at'], unique=False)


def downgrade() -> None:
    op.drop_table('refunds')  # its indexes go with it (the FK-backing one cannot be dropped first on MariaDB)
    with op.batch_alter_table('payments', schema=None) as batch_op:
        batch_op.drop_column('refunded_amount')
        batch_op.drop_column('refund_reserved')

"""consumer inbox and dead letters

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-25 00:47:54.313234
"""
import sqlalchemy as sa
from alembic import op

import models.base

revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('order_dead_letters',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('task_id', sa.String(length=155), nullable=False),
    sa.Column('task_name', sa.String(length=128), nullable=False),
    sa.Column('args', sa.Text(), nullable=False),
    sa.Column('error', sa.Text(), nullable=False),
    sa.Column('retries', sa.Integer(), nullable=False),
    sa.Column('failed_at', models.base.UTCDateTime(), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_order_dead_letters')),
    sa.UniqueConstraint('task_id', name=op.f('uq_order_dead_letters_task_id'))
    )
    with op.batch_alter_table('order_dead_letters', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_order_dead_letters_task_name'), ['task_name'], unique=False)

    op.create_table('order_inbox',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('consumer', sa.String(length=64), nullable=False),
    sa.Column('event_id', sa.Uuid(), nullable=False),
    sa.Column('event_type', sa.String(length=64), nullable=False),
    sa.Column('payload', sa.Text(), nullable=False),
    sa.Column('received_at', models.base.UTCDateTime(), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_order_inbox')),
    sa.UniqueConstraint('consumer', 'event_id', name='uq_order_inbox_consumer_event')
    )


def downgrade() -> None:
    op.drop_table("order_inbox")
    op.drop_table("order_dead_letters")

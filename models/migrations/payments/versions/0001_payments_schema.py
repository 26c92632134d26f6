"""payments schema

Revision ID: 0001
Revises: 
Create Date: 2026-11-25 01:50:59.938711
"""
import sqlalchemy as sa
from alembic import op

import models.base

revision = '0001'
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('payment_callbacks',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('provider', sa.String(length=32), nullable=False),
    sa.Column('event_id', sa.String(length=128), nullable=False),
    sa.Column('provider_reference', sa.String(length=128), nullable=False),
    sa.Column('outcome', sa.String(length=32), nullable=False),
    sa.Column('payload', sa.Text(), nullable=False),
    sa.Column('received_at', models.base.UTCDateTime(), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_payment_callbacks')),
    sa.UniqueConstraint('provider', 'event_id', name='uq_payment_callbacks_provider_event')
    )
    with op.batch_alter_table('payment_callbacks', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_payment_callbacks_provider_reference'), ['provider_reference'], unique=False)

    op.create_table('payment_dead_letters',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('task_id', sa.String(length=155), nullable=False),
    sa.Column('task_name', sa.String(length=128), nullable=False),
    sa.Column('args', sa.Text(), nullable=False),
    sa.Column('error', sa.Text(), nullable=False),
    sa.Column('retries', sa.Integer(), nullable=False),
    sa.Column('failed_at', models.base.UTCDateTime(), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_payment_dead_letters')),
    sa.UniqueConstraint('task_id', name=op.f('uq_payment_dead_letters_task_id'))
    )
    with op.batch_alter_table('payment_dead_letters', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_payment_dead_letters_task_name'), ['task_name'], unique=False)

    op.create_table('payment_idempotency_keys',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('user_uuid', sa.Uuid(), nullable=False),
    sa.Column('route', sa.String(length=128), nullable=False),
    sa.Column('idem_key', sa.String(length=255), nullable=False),
    sa.Column('request_hash', sa.String(length=64), nullable=False),
    sa.Column('response_status', sa.Integer(), nullable=True),
    sa.Column('response_body', sa.Text(), nullable=True),
    sa.Column('created_at', models.base.UTCDateTime(), nullable=False),
    sa.Column('expires_at', models.base.UTCDateTime(), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_payment_idempotency_keys')),
    sa.UniqueConstraint('user_uuid', 'route', 'idem_key', name='uq_payment_idempotency_keys_scope')
    )
    with op.batch_alter_table('payment_idempotency_keys', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_payment_idempotency_keys_expires_at'), ['expires_at'], unique=False)

    op.create_table('payment_outbox',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('event_id', sa.Uuid(), nullable=False),
    sa.Column('event_type', sa.String(length=64), nullable=False),
    sa.Column('aggregate_uuid', sa.Uuid(), nullable=False),
    sa.Column('payload', sa.Text(), nullable=False),
    sa.Column('created_at', models.base.UTCDateTime(), nullable=False),
    sa.Column('published_at', models.base.UTCDateTime(), nullable=True),
    sa.Column('attempts', sa.Integer(), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_payment_outbox')),
    sa.UniqueConstraint('event_id', name=op.f('uq_payment_outbox_event_id'))
    )
    with op.batch_alter_table('payment_outbox', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_payment_outbox_aggregate_uuid'), ['aggregate_uuid'], unique=False)
        batch_op.create_index('ix_payment_outbox_unpublished', ['published_at', 'id'], unique=False)

    op.create_table('payments',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('payment_uuid', sa.Uuid(), nullable=False),
    sa.Column('order_uuid', sa.Uuid(), nullable=False),
    sa.Column('active_order_uuid', sa.Uuid(), nullable=True),
    sa.Column('user_uuid', sa.Uuid(), nullable=False),
    sa.Column('seller_uuid', sa.Uuid(), nullable=False),
    sa.Column('amount', sa.Numeric(precision=12, scale=2), nullable=False),
    sa.Column('currency', sa.String(length=3), nullable=False),
    sa.Column('shipping_address', sa.String(length=500), nullable=False),
    sa.Column('payment_method', sa.String(length=32), nullable=False),
    sa.Column('status', sa.Enum('pending', 'review', 'processing', 'succeeded', 'failed', 'cancelled', 'expired', 'partially_refunded', 'refunded', name='paymentstatus', native_enum=False, length=32), nullable=False),
    sa.Column('provider_reference', sa.String(length=128), nullable=True),
    sa.Column('payment_data', sa.Text(), nullable=False),
    sa.Column('failure_reason', sa.String(length=255), nullable=True),
    sa.Column('refund_due', sa.Boolean(), nullable=False),
    sa.Column('expires_at', models.base.UTCDateTime(), nullable=False),
    sa.Column('paid_at', models.base.UTCDateTime(), nullable=True),
    sa.Column('created_at', models.base.UTCDateTime(), nullable=False),
    sa.Column('updated_at', models.base.UTCDateTime(), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_payments')),
    sa.UniqueConstraint('active_order_uuid', name=op.f('uq_payments_active_order_uuid')),
    sa.UniqueConstraint('payment_uuid', name=op.f('uq_payments_payment_uuid')),
    sa.UniqueConstraint('provider_reference', name=op.f('uq_payments_provider_reference'))
    )
    with op.batch_alter_table('payments', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_payments_order_uuid'), ['order_uuid'], unique=False)
        batch_op.create_index('ix_payments_status_expires', ['status', 'expires_at'], unique=False)
        batch_op.create_index('ix_payments_user_created', ['user_uuid', 'created_at'], unique=False)

    op.create_table('risk_dead_letters',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('task_id', sa.String(length=155), nullable=False),
    sa.Column('task_name', sa.String(length=128), nullable=False),
    sa.Column('args', sa.Text(), nullable=False),
    sa.Column('error', sa.Text(), nullable=False),
    sa.Column('retries', sa.Integer(), nullable=False),
    sa.Column('failed_at', models.base.UTCDateTime(), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_risk_dead_letters')),
    sa.UniqueConstraint('task_id', name=op.f('uq_risk_dead_letters_task_id'))
    )
    with op.batch_alter_table('risk_dead_letters', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_risk_dead_letters_task_name'), ['task_name'], unique=False)

    op.create_table('security_policies',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('policy_uuid', sa.Uuid(), nullable=False),
    sa.Column('name', sa.String(length=64), nullable=False),
    sa.Column('rule', sa.Enum('amount', 'velocity', 'failures', 'addresses', 'deny_list', name='rulekind', native_enum=False, length=32), nullable=False),
    sa.Column('enabled', sa.Boolean(), nullable=False),
    sa.Column('weight', sa.Integer(), nullable=False),
    sa.Column('params', sa.Text(), nullable=False),
    sa.Column('created_at', models.base.UTCDateTime(), nullable=False),
    sa.Column('updated_at', models.base.UTCDateTime(), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_security_policies')),
    sa.UniqueConstraint('name', name=op.f('uq_security_policies_name')),
    sa.UniqueConstraint('policy_uuid', name=op.f('uq_security_policies_policy_uuid'))
    )
    op.create_table('risk_assessments',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('assessment_uuid', sa.Uuid(), nullable=False),
    sa.Column('payment_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('score', sa.Integer(), nullable=False),
    sa.Column('level', sa.Enum('low', 'medium', 'high', 'critical', name='risklevel', native_enum=False, length=32), nullable=False),
    sa.Column('decision', sa.Enum('allow', 'review', 'block', name='riskdecision', native_enum=False, length=32), nullable=False),
    sa.Column('reasons', sa.Text(), nullable=False),
    sa.Column('review_status', sa.Enum('pending', 'approved', 'rejected', name='reviewstatus', native_enum=False, length=32), nullable=True),
    sa.Column('reviewed_by', sa.Uuid(), nullable=True),
    sa.Column('reviewed_at', models.base.UTCDateTime(), nullable=True),
    sa.Column('created_at', models.base.UTCDateTime(), nullable=False),
    sa.ForeignKeyConstraint(['payment_id'], ['payments.id'], name=op.f('fk_risk_assessments_payment_id_payments'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_risk_assessments')),
    sa.UniqueConstraint('assessment_uuid', name=op.f('uq_risk_assessments_assessment_uuid')),
    sa.UniqueConstraint('payment_id', name=op.f('uq_risk_assessments_payment_id'))
    )
    with op.batch_alter_table('risk_assessments', schema=None) as batch_op:
        batch_op.create_index('ix_risk_assessments_level_decision', ['level', 'decision'], unique=False)

    op.create_table('risk_rule_results',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('payment_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('policy_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('policy_name', sa.String(length=64), nullable=False),
    sa.Column('rule', sa.String(length=32), nullable=False),
    sa.Column('answered', sa.Boolean(), nullable=False),
    sa.Column('triggered', sa.Boolean(), nullable=False),
    sa.Column('score', sa.Integer(), nullable=False),
    sa.Column('reason', sa.String(length=255), nullable=False),
    sa.Column('created_at', models.base.UTCDateTime(), nullable=False),
    sa.ForeignKeyConstraint(['payment_id'], ['payments.id'], name=op.f('fk_risk_rule_results_payment_id_payments'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['policy_id'], ['security_policies.id'], name=op.f('fk_risk_rule_results_policy_id_security_policies'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_risk_rule_results')),
    sa.UniqueConstraint('payment_id', 'policy_id', name='uq_risk_rule_results_payment_policy')
    )
    with op.batch_alter_table('risk_rule_results', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_risk_rule_results_policy_id'), ['policy_id'], unique=False)


def downgrade() -> None:
    # Dropping a table drops its indexes; dropping an FK-backing index first is an error on MariaDB.
    for table in ("risk_rule_results", "risk_assessments", "security_policies", "risk_dead_letters", "payments",
                  "payment_outbox", "payment_idempotency_keys", "payment_dead_letters", "payment_callbacks"):
        op.drop_table(table)

"""notifications schema

Revision ID: 0001
Revises: 
Create Date: 2026-11-25 01:51:39.125538
"""
import sqlalchemy as sa
from alembic import op

import models.base

revision = '0001'
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('notification_dead_letters',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('task_id', sa.String(length=155), nullable=False),
    sa.Column('task_name', sa.String(length=128), nullable=False),
    sa.Column('args', sa.Text(), nullable=False),
    sa.Column('error', sa.Text(), nullable=False),
    sa.Column('retries', sa.Integer(), nullable=False),
    sa.Column('failed_at', models.base.UTCDateTime(), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_notification_dead_letters')),
    sa.UniqueConstraint('task_id', name=op.f('uq_notification_dead_letters_task_id'))
    )
    with op.batch_alter_table('notification_dead_letters', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_notification_dead_letters_task_name'), ['task_name'], unique=False)

    op.create_table('notification_fanouts',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('event_id', sa.Uuid(), nullable=False),
    sa.Column('event_type', sa.String(length=64), nullable=False),
    sa.Column('recipient_uuid', sa.Uuid(), nullable=False),
    sa.Column('role', sa.String(length=16), nullable=False),
    sa.Column('language', sa.String(length=8), nullable=False),
    sa.Column('type', sa.Enum('transaction', 'system', 'promotion', name='notificationtype', native_enum=False, length=32), nullable=False),
    sa.Column('title', sa.String(length=200), nullable=False),
    sa.Column('content', sa.Text(), nullable=False),
    sa.Column('related_id', sa.String(length=64), nullable=True),
    sa.Column('related_data', sa.Text(), nullable=False),
    sa.Column('created_at', models.base.UTCDateTime(), nullable=False),
    sa.Column('recorded_at', models.base.UTCDateTime(), nullable=True),
    sa.Column('outcome', sa.String(length=255), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_notification_fanouts')),
    sa.UniqueConstraint('event_id', 'recipient_uuid', name='uq_notification_fanouts_event_recipient'),
    sqlite_autoincrement=True
    )
    with op.batch_alter_table('notification_fanouts', schema=None) as batch_op:
        batch_op.create_index('ix_notification_fanouts_unrecorded', ['recorded_at', 'created_at'], unique=False)

    op.create_table('notification_inbox',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('consumer', sa.String(length=64), nullable=False),
    sa.Column('event_id', sa.Uuid(), nullable=False),
    sa.Column('event_type', sa.String(length=64), nullable=False),
    sa.Column('payload', sa.Text(), nullable=False),
    sa.Column('received_at', models.base.UTCDateTime(), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_notification_inbox')),
    sa.UniqueConstraint('consumer', 'event_id', name='uq_notification_inbox_consumer_event')
    )
    op.create_table('notification_preferences',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('user_uuid', sa.Uuid(), nullable=False),
    sa.Column('in_app_enabled', sa.Boolean(), nullable=False),
    sa.Column('email_enabled', sa.Boolean(), nullable=False),
    sa.Column('webhook_enabled', sa.Boolean(), nullable=False),
    sa.Column('email_address', sa.String(length=254), nullable=True),
    sa.Column('webhook_url', sa.String(length=500), nullable=True),
    sa.Column('webhook_secret', sa.String(length=80), nullable=True),
    sa.Column('webhook_previous_secret', sa.String(length=80), nullable=True),
    sa.Column('previous_secret_until', models.base.UTCDateTime(), nullable=True),
    sa.Column('language', sa.Enum('zh', 'en', name='language', native_enum=False, length=32), nullable=False),
    sa.Column('created_at', models.base.UTCDateTime(), nullable=False),
    sa.Column('updated_at', models.base.UTCDateTime(), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_notification_preferences')),
    sa.UniqueConstraint('user_uuid', name=op.f('uq_notification_preferences_user_uuid'))
    )
    op.create_table('notification_deliveries',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('delivery_uuid', sa.Uuid(), nullable=False),
    sa.Column('fanout_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('event_id', sa.Uuid(), nullable=False),
    sa.Column('recipient_uuid', sa.Uuid(), nullable=False),
    sa.Column('channel', sa.Enum('in_app', 'email', 'webhook', name='channel', native_enum=False, length=32), nullable=False),
    sa.Column('status', sa.Enum('pending', 'delivered', 'failed', 'dead', name='deliverystatus', native_enum=False, length=32), nullable=False),
    sa.Column('attempts', sa.Integer(), nullable=False),
    sa.Column('max_attempts', sa.Integer(), nullable=False),
    sa.Column('last_error', sa.String(length=1000), nullable=True),
    sa.Column('next_attempt_at', models.base.UTCDateTime(), nullable=True),
    sa.Column('last_attempt_at', models.base.UTCDateTime(), nullable=True),
    sa.Column('delivered_at', models.base.UTCDateTime(), nullable=True),
    sa.Column('locked_until', models.base.UTCDateTime(), nullable=True),
    sa.Column('created_at', models.base.UTCDateTime(), nullable=False),
    sa.Column('updated_at', models.base.UTCDateTime(), nullable=False),
    sa.ForeignKeyConstraint(['fanout_id'], ['notification_fanouts.id'], name=op.f('fk_notification_deliveries_fanout_id_notification_fanouts'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_notification_deliveries')),
    sa.UniqueConstraint('delivery_uuid', name=op.f('uq_notification_deliveries_delivery_uuid')),
    sa.UniqueConstraint('event_id', 'recipient_uuid', 'channel', name='uq_notification_deliveries_once'),
    sqlite_autoincrement=True
    )
    with op.batch_alter_table('notification_deliveries', schema=None) as batch_op:
        batch_op.create_index('ix_notification_deliveries_due', ['status', 'next_attempt_at'], unique=False)
        batch_op.create_index(batch_op.f('ix_notification_deliveries_fanout_id'), ['fanout_id'], unique=False)
        batch_op.create_index('ix_notification_deliveries_recipient_created', ['recipient_uuid', 'created_at'], unique=False)

    op.create_table('notifications',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('notification_uuid', sa.Uuid(), nullable=False),
    sa.Column('recipient_uuid', sa.Uuid(), nullable=False),
    sa.Column('fanout_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=True),
    sa.Column('type', sa.Enum('transaction', 'system', 'promotion', name='notificationtype', native_enum=False, length=32), nullable=False),
    sa.Column('title', sa.String(length=200), nullable=False),
    sa.Column('content', sa.Text(), nullable=False),
    sa.Column('is_read', sa.Boolean(), nullable=False),
    sa.Column('read_at', models.base.UTCDateTime(), nullable=True),
    sa.Column('related_id', sa.String(length=64), nullable=True),
    sa.Column('related_data', sa.Text(), nullable=False),
    sa.Column('created_at', models.base.UTCDateTime(), nullable=False),
    sa.ForeignKeyConstraint(['fanout_id'], ['notification_fanouts.id'], name=op.f('fk_notifications_fanout_id_notification_fanouts'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_notifications')),
    sa.UniqueConstraint('fanout_id', name=op.f('uq_notifications_fanout_id')),
    sa.UniqueConstraint('notification_uuid', name=op.f('uq_notifications_notification_uuid'))
    )
    with op.batch_alter_table('notifications', schema=None) as batch_op:
        batch_op.create_index('ix_notifications_recipient_created', ['recipient_uuid', 'created_at'], unique=False)
        batch_op.create_index('ix_notifications_recipient_read', ['recipient_uuid', 'is_read'], unique=False)


def downgrade() -> None:
    # Dropping a table drops its indexes; dropping an FK-backing index first is an error on MariaDB.
    for table in ("notifications", "notification_deliveries", "notification_preferences", "notification_inbox",
                  "notification_fanouts", "notification_dead_letters"):
        op.drop_table(table)

"""Celery settings, read by `app.config_from_object("celeryconfig")`; every value from Settings.

`from_settings(settings)` is the whole configuration as a dict, so tests and `init_celery` can build
it for injected settings; the module attributes are that dict for the environment's settings.
"""
from __future__ import annotations

from kombu import Queue

from common import broker
from common.settings import Settings

broker.install()  # redis:// brokers get one redis-py client per channel, not one per publish

QUEUES = ("orders", "payments", "risk", "notifications")


def from_settings(settings: Settings) -> dict:
    visibility = settings.broker_visibility_timeout
    keys = {"global_keyprefix": settings.celery_key_prefix} if settings.celery_key_prefix else {}
    return {
        "broker_url": settings.broker_url,
        "result_backend": settings.result_backend,
        "broker_transport_options": {
            "visibility_timeout": visibility,
            # How often a worker looks for messages whose consumer died (acks_late + SIGKILL/OOM):
            # every min(10 s, a third of the timeout), each time (kombu's default scans every 100 s).
            "unacked_restore_interval": max(1, min(10, visibility // 3)),
            "unacked_restore_throttle": 1,
            **keys,
        },
        "result_backend_transport_options": {"visibility_timeout": visibility, **keys},
        "broker_connection_retry_on_startup": True,
        "imports": ("tasks.orders.tasks", "tasks.notifications.tasks", "tasks.payments.tasks",
                    "tasks.payments.refund_tasks", "tasks.risk.tasks"),
        "task_serializer": "json",
        "result_serializer": "json",
        "accept_content": ["json"],
        "timezone": "UTC",
        "enable_utc": True,
        # Routing: task names are "<domain>.<verb>"; each domain has its queue and pool.
        "task_routes": {f"{queue}.*": {"queue": queue} for queue in QUEUES},
        "task_default_queue": "default",
        # Declared, so the topology is explicit (Flower lists the queues before any worker runs).
        "task_queues": [Queue(name, routing_key=name) for name in (*QUEUES, "default")],
        # At-least-once delivery; every task is idempotent (guarded by unique keys/conditional updates).
        "task_acks_late": True,
        "task_reject_on_worker_lost": True,
        "worker_prefetch_multiplier": 1,
        "worker_deduplicate_successful_tasks": True,
        "worker_soft_shutdown_timeout": 10.0,
        "worker_enable_soft_shutdown_on_idle": True,
        "result_expires": 86400,
        "result_extended": True,
        "task_track_started": True,
        "worker_send_task_events": True,
        "task_send_sent_event": True,
        "worker_hijack_root_logger": False,
        "worker_cancel_long_running_tasks_on_connection_loss": False,
        "beat_schedule": periodic_tasks(settings),
    }


def periodic_tasks(settings: Settings) -> dict:
    """Periodic sweeps by task name; `expires` no longer than the interval, so a backlog after an
    outage runs once, not N stale times."""
    entries = {
        "orders.relay_outbox": settings.outbox_relay_interval,
        "orders.expire_unpaid_orders": settings.order_sweep_interval,
        "orders.purge_idempotency_keys": 3600,
        "payments.relay_outbox": settings.outbox_relay_interval,
        "payments.expire_pending_payments": settings.payment_sweep_interval,
        "payments.redrive_stalled_payments": settings.payment_sweep_interval,
        "payments.redrive_stalled_refunds": settings.payment_sweep_interval,
        "payments.reconcile_payments": settings.payment_sweep_interval,
        "payments.redrive_unsettled_captures": settings.payment_sweep_interval,
        "payments.redrive_unsettled_refunds": settings.payment_sweep_interval,
        "notifications.retry_due_deliveries": 30,
    }
    return {name: {"task": name, "schedule": float(every), "options": {"expires": float(every)}}
            for name, every in entries.items()}


globals().update(from_settings(Settings.from_env()))

"""Worker signals: our logging instead of Celery's, task ids in every log line, fork safety, and the
pool's Nacos registration.

Registration happens in the main worker process only (`worker_ready`, `worker_shutdown`; prefork
children never see these): the pool registers under its Nacos name (`workers.pools`) at SERVICE_IP
and the port of its `/health` endpoint, with its queues, concurrency, execution pool, Celery node
name and version as metadata. Its heartbeat follows `ConsumerProbe`, so a worker that stops
consuming goes unhealthy in Nacos although its process lives on.
"""
from __future__ import annotations

import ipaddress
import logging
import os
from typing import Any

from celery import signals

from common.logging import configure_logging, task_id_var
from common.settings import Settings

log = logging.getLogger("cfmp.tasks")
_registered: list[Any] = []  # what worker_shutdown stops: the Registration and the HealthServer


@signals.setup_logging.connect
def _setup_logging(**_kwargs) -> None:
    """Connecting here stops Celery from configuring logging itself."""
    configure_logging(os.environ.get("CFMP_PROCESS", "worker"), Settings.from_env())


@signals.task_prerun.connect
def _bind_task(task_id=None, task=None, **_kwargs) -> None:
    task_id_var.set(task_id or "-")
    log.info("start %s", task.name)


@signals.task_postrun.connect
def _unbind_task(task_id=None, task=None, state=None, **_kwargs) -> None:
    log.info("end %s: %s", task.name, state)
    task_id_var.set("-")


@signals.worker_process_init.connect
def _after_fork(**_kwargs) -> None:
    """A forked child must not reuse the parent's pooled database connections."""
    from workers.celery import flask_app
    from models.base import db

    with flask_app.app_context():
        for engine in db.engines.values():
            engine.dispose(close=False)


def settings_of(app) -> Settings:
    """The settings the worker's Flask app was built with (tests inject theirs), else the environment's."""
    flask_app = getattr(app.Task, "flask_app", None)
    return flask_app.config["CFMP_SETTINGS"] if flask_app is not None else Settings.from_env()


def pool_of(consumer):
    """The pool this worker runs: by node name (`orders@host`, as `cfmp worker` names it), else by
    the exact set of queues it consumes (`celery -A workers worker -Q orders`)."""
    from workers.pools import POOLS

    by_name = POOLS.get(consumer.hostname.partition("@")[0])
    if by_name is not None:
        return by_name
    consumed = set(consumer.app.amqp.queues.consume_from or ())
    return next((pool for pool in POOLS.values() if set(pool.queues) == consumed), None)


def pool_type(execution_pool) -> str:
    """The `--pool` name of a Celery execution pool (`prefork`, `threads`, `solo`, ...)."""
    from celery.concurrency import ALIASES

    path = f"{type(execution_pool).__module__}:{type(execution_pool).__name__}"
    return next((alias for alias, target in ALIASES.items() if target == path), path)


def pool_metadata(consumer, pool) -> dict[str, str]:
    from common.registry import HEALTH_PATH, version

    return {"kind": "worker-pool", "pool": pool.name, "queues": ",".join(pool.queues),
            "concurrency": str(consumer.controller.concurrency),
            "pool_type": pool_type(consumer.pool),
            "celery_hostname": consumer.hostname, "version": version(), "health_path": HEALTH_PATH}


def _bind_host(service_ip: str) -> str:
    try:
        return "127.0.0.1" if ipaddress.ip_address(service_ip).is_loopback else "0.0.0.0"
    except ValueError:  # a host name: reachable from elsewhere, presumably
        return "0.0.0.0"


@signals.worker_ready.connect
def register_pool(sender=None, **_kwargs) -> None:
    """Register the pool in Nacos once the consumer runs, with the port of its `/health` endpoint."""
    from common.registry import register
    from workers.liveness import ConsumerProbe, HealthServer

    consumer = sender
    settings = settings_of(consumer.app)
    if not settings.nacos_server:
        return
    pool = pool_of(consumer)
    if pool is None:
        log.warning("worker %s consumes no known pool's queues: not registered in Nacos", consumer.hostname)
        return
    probe = ConsumerProbe(consumer, pool.queues)
    metadata = pool_metadata(consumer, pool)
    health = HealthServer(_bind_host(settings.service_ip), probe.alive, lambda: {**metadata, "reason": probe.reason})
    registration = register(settings, pool.service, health.port, metadata, probe=probe)
    _registered.extend([registration, health])


@signals.worker_shutdown.connect
def deregister_pool(**_kwargs) -> None:
    while _registered:
        _registered.pop(0).stop()

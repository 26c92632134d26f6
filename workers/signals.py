"""Worker signals: our logging instead of Celery's, task ids in every log line, fork safety."""
from __future__ import annotations

import logging
import os

from celery import signals

from common.logging import configure_logging, task_id_var
from common.settings import Settings

log = logging.getLogger("cfmp.tasks")


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

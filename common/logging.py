"""One line per event, to stderr and to `<LOG_DIR>/<service>.log`, tagged with the request or task id.

The ids live in context variables: the HTTP plumbing sets `request_id`, the worker signals set
`task_id`; every record carries both (or `-`).
"""
from __future__ import annotations

import contextvars
import logging
import sys
from pathlib import Path

from common.settings import Settings

request_id_var: contextvars.ContextVar[str] = contextvars.ContextVar("request_id", default="-")
task_id_var: contextvars.ContextVar[str] = contextvars.ContextVar("task_id", default="-")

FORMAT = "%(asctime)s %(levelname)s %(service)s %(name)s req=%(request_id)s task=%(task_id)s %(message)s"
_HANDLER_MARK = "_cfmp_handler"


class ContextFilter(logging.Filter):
    def __init__(self, service: str):
        super().__init__()
        self.service = service

    def filter(self, record: logging.LogRecord) -> bool:
        record.service = self.service
        record.request_id = request_id_var.get()
        record.task_id = task_id_var.get()
        return True


def configure_logging(service: str, settings: Settings, stream=None) -> logging.Logger:
    """Install the stderr and file handlers on the root logger once per process (idempotent)."""
    root = logging.getLogger()
    for handler in list(root.handlers):
        if getattr(handler, _HANDLER_MARK, False):
            root.removeHandler(handler)
            handler.close()
    log_dir = Path(settings.log_dir)
    log_dir.mkdir(parents=True, exist_ok=True)
    formatter = logging.Formatter(FORMAT)
    handlers = [logging.StreamHandler(stream or sys.stderr), logging.FileHandler(log_dir / f"{service}.log")]
    for handler in handlers:
        handler.setFormatter(formatter)
        handler.addFilter(ContextFilter(service))
        setattr(handler, _HANDLER_MARK, True)
        root.addHandler(handler)
    root.setLevel(settings.log_level)
    for noisy in ("werkzeug", "alembic.runtime.plugins"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    return logging.getLogger(service)

"""Recording tasks that failed for good, in the database of the task's domain."""
from __future__ import annotations

import json
import logging

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError

from models import NotificationDeadLetter, OrderDeadLetter, PaymentDeadLetter, RiskDeadLetter, db

log = logging.getLogger(__name__)
# Task-name prefix → the dead-letter table of that domain's database.
TABLES = {"orders": OrderDeadLetter, "notifications": NotificationDeadLetter, "payments": PaymentDeadLetter,
          "risk": RiskDeadLetter}


def record(task_name: str, task_id: str, args, kwargs, error: BaseException, retries: int) -> None:
    model = TABLES.get(task_name.split(".", 1)[0])
    log.error("dead letter: %s[%s] after %d retries: %r", task_name, task_id, retries, error)
    if model is None:
        return
    db.session.rollback()
    db.session.add(model(task_id=task_id, task_name=task_name, retries=retries, error=repr(error)[:4000],
                         args=json.dumps({"args": args, "kwargs": kwargs}, default=str)[:60000]))
    try:
        db.session.commit()
    except IntegrityError:  # the same task id failed before (a redelivery): keep the first record
        db.session.rollback()


def listing(task_prefix: str = "orders", limit: int = 100) -> list:
    model = TABLES[task_prefix]
    return db.session.scalars(sa.select(model).order_by(model.id.desc()).limit(limit)).all()

"""Publishing outbox rows: right after the commit that wrote them, and by the beat relay for
whatever that could not publish (the broker was down, the process died after commit). Rows
published after their commit are marked so by `tasks.outbox_marks`, a moment later and in batches.

Each event becomes one task message per subscriber, with the task id `<event_id>:<task>`, so a
re-publish is recognisably the same message; consumers still dedupe on the event id.
"""
from __future__ import annotations

import datetime as dt
import json
import logging

import redis
import sqlalchemy as sa
from celery import current_app as default_celery
from flask import current_app as flask_app
from flask import has_app_context
from sqlalchemy import event
from sqlalchemy.orm import Session

from models.base import utcnow
from models.outbox import OutboxMixin
from tasks import broker_memory
from tasks.events import subscribers
from tasks.outbox_marks import marks

log = logging.getLogger(__name__)
RELAY_BATCH = 200
# The relay leaves rows this young alone: their own request is most likely publishing them.
RELAY_GRACE = dt.timedelta(seconds=2)
_PENDING = "cfmp_outbox_pending"


def _celery():
    """The Celery app of the running Flask app (init_celery stores it), else the default one."""
    if has_app_context() and "celery" in flask_app.extensions:
        return flask_app.extensions["celery"]
    return default_celery


def publish(row: OutboxMixin, producer=None) -> None:
    """Send one task per subscriber; raises when the broker cannot take it. Give a `producer` to
    send several rows over one pooled connection (`publish_all`)."""
    body = json.loads(row.payload)
    celery = _celery()
    for task_name in subscribers(row.event_type):
        # ignore_result: consumers record their outcome in their inbox; a publisher that asked for
        # results would subscribe to each one (a Redis pub/sub connection per publishing thread).
        # argsrepr: what Flower and the logs show of the arguments; naming the event is both more
        # useful than a repr of its payload and cheaper than Celery's saferepr of it.
        celery.send_task(task_name, args=[body], task_id=f"{row.event_id}:{task_name}", retry=False,
                         ignore_result=True, producer=producer, argsrepr=f"[{row.event_type} {row.event_id}]",
                         kwargsrepr="{}")


def publish_all(rows: list[OutboxMixin], what: str) -> list[OutboxMixin]:
    """Publish rows in order over one producer, as one Redis pipeline (kombu's `Producer.batch`):
    every task message and its `task-sent` event reach the broker in a single round trip. Returns
    the rows published: all of them, or none when the broker refused the batch (the relay
    publishes them later; a message that got through anyway is the same task id again, and its
    consumers dedupe on the event id)."""
    if not rows:
        return []
    try:
        with _celery().producer_or_acquire() as producer, producer.batch():
            for row in rows:
                publish(row, producer)
    except Exception as exc:  # the broker is away: the relay will publish them later
        log.warning("%s: %d event(s) not published, from %s %s on (%s); the relay retries", what, len(rows),
                    rows[0].event_type, rows[0].event_id, exc)
        return []
    return rows


def stage(session: Session, rows: list[OutboxMixin]) -> None:
    """Publish `rows` once `session` commits (forgotten if it rolls back). Flushed rows are staged
    by the flush itself; rows inserted past the unit of work (`models.direct_insert`) are staged here."""
    if rows:
        session.info.setdefault(_PENDING, []).extend(rows)


@event.listens_for(Session, "after_flush")
def _collect(session: Session, _flush_context) -> None:
    stage(session, [obj for obj in session.new if isinstance(obj, OutboxMixin)])


@event.listens_for(Session, "after_commit")
def _publish_committed(session: Session) -> None:
    by_model: dict[type, list[int]] = {}
    for row in publish_all(session.info.pop(_PENDING, []), "outbox"):
        by_model.setdefault(type(row), []).append(row.id)
    for model, ids in by_model.items():
        marks.add(session.get_bind(mapper=sa.inspect(model)), model, ids)


@event.listens_for(Session, "after_rollback")
def _forget(session: Session) -> None:
    session.info.pop(_PENDING, None)


def relay(session: Session, model: type[OutboxMixin], batch: int = RELAY_BATCH) -> int:
    """Publish unpublished rows in id order; stop at the first failure so order is kept. First, if
    the broker may have lost messages since the last run, publish again what it may have lost."""
    if has_app_context():
        replay_lost(session, model, flask_app.config["CFMP_SETTINGS"], batch)
    rows = session.scalars(
        sa.select(model)
        .where(model.published_at.is_(None), model.created_at <= utcnow() - RELAY_GRACE)
        .order_by(model.id).limit(batch)
    ).all()
    published = [row.id for row in publish_all(list(rows), "outbox relay")]
    if published:
        session.execute(sa.update(model).where(model.id.in_(published)).values(published_at=utcnow(),
                                                                              attempts=model.attempts + 1))
        session.commit()
        log.info("outbox relay: published %d %s event(s)", len(published), model.__tablename__)
    return len(published)


def replay_lost(session: Session, model: type[OutboxMixin], settings, batch: int = RELAY_BATCH) -> int:
    """Publish again, in id order, every event created since the broker last vouched for its messages
    (`tasks.broker_memory`); returns how many. Published or not, each goes out once more under its
    own task ids, and consumers dedupe on the event id. The marker is written only once all went
    out: a run cut short (broker away again, process killed) leaves the next run to start over."""
    try:
        check = broker_memory.replay_from(settings, model.__tablename__)
    except redis.RedisError as exc:  # the broker is away: the publishes below fail too, the next run looks again
        log.warning("outbox replay: cannot read the broker's marker for %s (%s)", model.__tablename__, exc)
        return 0
    replayed, last_id = 0, 0
    while check.since is not None:
        rows = session.scalars(sa.select(model).where(model.created_at >= check.since, model.id > last_id)
                               .order_by(model.id).limit(batch)).all()
        if not rows:
            break
        if not publish_all(list(rows), "outbox replay"):
            return replayed
        replayed, last_id = replayed + len(rows), rows[-1].id
        session.expunge_all()  # a long replay holds one batch at a time
    if replayed:
        log.warning("outbox replay: %s; published %d %s event(s) created since %s again", check.reason, replayed,
                    model.__tablename__, check.since.isoformat(timespec="seconds"))
    try:
        broker_memory.remember(settings, check)
    except redis.RedisError as exc:
        log.warning("outbox replay: cannot write the broker's marker for %s (%s)", model.__tablename__, exc)
    return replayed

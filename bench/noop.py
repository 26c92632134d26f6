"""Celery's own ceiling on this machine: a task that does nothing, under the system's Celery settings.

The app takes the very configuration the pools run with (`celeryconfig.from_settings`: the broker
and key prefix, acks_late, prefetch 1, task events, results with `track_started`), without the
task modules or Flask. One worker per pool, each with that pool's execution pool and concurrency,
consumes a queue of its own, so the ceiling has the topology of the system it is compared to.

    python -m celery -A bench.noop worker -Q noop-orders --pool prefork -c 2 --hostname noop-orders@%h
"""
from __future__ import annotations

from celery import Celery

import celeryconfig
from common.settings import Settings



def make_app(settings: Settings) -> Celery:
    app = Celery("cfmp-bench-noop", set_as_current=False)
    app.config_from_object({**celeryconfig.from_settings(settings), "imports": (), "beat_schedule": {},
                            "task_routes": {}})
    app.task(name="bench.noop")(noop)
    return app


def noop() -> None:
    return None


app = make_app(Settings.from_env())


def queue_for(pool: str) -> str:
    return f"noop-{pool}"

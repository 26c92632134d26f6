"""The Celery app (Flask pattern): `init_celery(flask_app)` binds one Celery app to one Flask app.

API factories call it so a view's `send_task()` uses the workers' configuration; the worker entry
(`workers/celery.py`) calls it with a minimal Flask app, so `celery -A workers worker -Q payments`
works as Celery users expect.
"""
from __future__ import annotations

from celery import Celery
from flask import Flask

import celeryconfig
import tasks.outbox  # noqa: F401  (installs the after-commit outbox publisher)
from common.settings import Settings
from models import sessions
from models.engine import engine_options
from models.migrate import BINDS
from workers.base import FlaskTask


# A web request that publishes must not wait on a broker that is away: kombu would otherwise retry
# the connection for ~6 s. The outbox relay publishes what failed, so fail fast and move on.
FAIL_FAST_PUBLISHING = {"max_retries": 1, "interval_start": 0, "interval_step": 0.2, "interval_max": 0.5,
                        "socket_connect_timeout": 2}


def init_celery(flask_app: Flask, fail_fast_publishing: bool = False, default: bool = True) -> Celery:
    """Bind a Celery app to `flask_app`. `default=False` for apps that only publish (the HTTP
    services, which always use `flask_app.extensions["celery"]`): a worker looks tasks up through
    the default app, so a service created in the same process must not take that place."""
    settings = flask_app.config["CFMP_SETTINGS"]
    task_cls = type("AppTask", (FlaskTask,), {"flask_app": flask_app})
    celery = Celery(flask_app.name, task_cls=task_cls)
    config = celeryconfig.from_settings(settings)
    if fail_fast_publishing:
        config["broker_transport_options"].update(FAIL_FAST_PUBLISHING)
    celery.config_from_object(config)
    if default:
        celery.set_default()
    flask_app.extensions["celery"] = celery
    return celery


def create_worker_app(settings: Settings) -> Flask:
    """The minimal Flask app tasks run in: settings and every database bind, no blueprints."""
    flask_app = Flask("cfmp.worker")
    flask_app.config.from_mapping(
        CFMP_SETTINGS=settings,
        SQLALCHEMY_BINDS={bind: engine_options(settings.database_urls[bind]) for bind in BINDS},
    )
    sessions.init_app(flask_app)
    return flask_app

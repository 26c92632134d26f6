"""The task base class: app context per call, and dead letters for tasks that failed for good."""
from __future__ import annotations

import logging

from celery import Task


class FlaskTask(Task):
    """Pushes the Flask app context per call; Flask-SQLAlchemy removes the session on teardown, so
    each task gets a fresh one and nothing leaks between tasks."""

    flask_app = None  # set by init_celery on the app's subclass

    def __call__(self, *args, **kwargs):
        with self.flask_app.app_context():
            return super().__call__(*args, **kwargs)

    def on_failure(self, exc, task_id, args, kwargs, einfo):
        """Final failure (a permanent error, a bug, or retries exhausted): keep it for operators."""
        from tasks import dead_letters

        try:
            with self.flask_app.app_context():
                dead_letters.record(self.name, task_id, args, kwargs, exc, self.request.retries)
        except Exception:  # the database may be what failed; the log line still carries it all
            logging.getLogger(__name__).exception("could not store the dead letter of %s[%s]", self.name, task_id)
        super().on_failure(exc, task_id, args, kwargs, einfo)

"""Worker entry point: `celery -A workers worker -Q orders` finds `app` here."""
from common.settings import Settings
from workers import create_worker_app, init_celery
from workers import signals  # noqa: F401  (logging, task ids in logs, fork safety)

flask_app = create_worker_app(Settings.from_env())
app = init_celery(flask_app)

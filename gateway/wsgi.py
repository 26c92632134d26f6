"""The gateway's WSGI entry for gunicorn: `gunicorn -k gthread --threads 8 -b 0.0.0.0:9080 gateway.wsgi:app`.

This is a process entry point, so it is the place (unlike `create_app`) that configures logging;
`configure_logging` is idempotent, so a launcher that already called it loses nothing.
"""
from __future__ import annotations

from common.logging import configure_logging
from common.settings import Settings
from gateway import create_app

settings = Settings.from_env()
configure_logging("gateway", settings)
app = create_app(settings)

"""`build_app`: the one way every service's Flask app is assembled."""
from __future__ import annotations

import logging
import time

from flask import Flask, g, request
from werkzeug.middleware.proxy_fix import ProxyFix

from api.common import health, openapi
from api.common.auth import authenticate_request
from api.common.errors import register_error_handlers
from common.http import REQUEST_ID_HEADER, request_id_from
from common.logging import request_id_var
from common.settings import Settings
from models import sessions
from models.engine import engine_options
from models.migrate import ensure_sqlite_dir
from workers import init_celery

log = logging.getLogger("cfmp.http")


def _begin_request() -> None:
    g.started = time.perf_counter()
    g.request_id = request_id_from(request.headers.get(REQUEST_ID_HEADER))
    g.request_id_token = request_id_var.set(g.request_id)


def _forget_request(_exc) -> None:
    """The server thread lives on: do not let this request's id tag its later log lines."""
    token = g.pop("request_id_token", None)
    if token is not None:
        request_id_var.reset(token)


def _end_request(response):
    response.headers[REQUEST_ID_HEADER] = g.get("request_id", "-")
    elapsed = (time.perf_counter() - g.get("started", time.perf_counter())) * 1000
    log.info("%s %s -> %s in %.1f ms", request.method, request.full_path.rstrip("?"), response.status_code, elapsed)
    return response


def build_app(service: str, binds: tuple[str, ...], blueprints, settings: Settings | None = None) -> Flask:
    settings = settings or Settings.from_env()
    app = Flask(f"cfmp.{service}")
    for bind in binds:
        ensure_sqlite_dir(settings.database_urls[bind])
    app.config.from_mapping(
        CFMP_SETTINGS=settings,
        CFMP_SERVICE=service,
        CFMP_BINDS=binds,
        SQLALCHEMY_BINDS={bind: engine_options(settings.database_urls[bind]) for bind in binds},
        MAX_CONTENT_LENGTH=settings.gateway_max_body,
    )
    app.json.sort_keys = False
    # Behind the gateway: pagination links use the host and scheme the client used.
    app.wsgi_app = ProxyFix(app.wsgi_app, x_for=1, x_proto=1, x_host=1)
    sessions.init_app(app)
    init_celery(app, fail_fast_publishing=True, default=False)
    register_error_handlers(app)
    app.before_request(_begin_request)
    app.before_request(authenticate_request)
    app.after_request(_end_request)
    app.teardown_request(_forget_request)
    app.register_blueprint(health.bp)
    app.register_blueprint(openapi.bp)
    for blueprint in blueprints:
        app.register_blueprint(blueprint)
    return app

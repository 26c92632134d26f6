"""`/health` (the process is up) and `/ready` (its database and the broker answer)."""
from __future__ import annotations

import redis
import sqlalchemy as sa
from flask import Blueprint, current_app

from api.common.auth import public
from api.common.errors import ApiError
from models.base import db

bp = Blueprint("health", __name__)


@bp.get("/health")
@public
def health():
    return {"status": "ok", "service": current_app.config["CFMP_SERVICE"]}, 200


def _check_database(bind: str) -> str:
    try:
        with db.engines[bind].connect() as connection:
            connection.execute(sa.text("SELECT 1"))
        return "ok"
    except Exception as exc:  # any failure means "not ready"; the reason goes to the operator
        return f"error: {type(exc).__name__}: {exc}"[:300]


def _check_broker(url: str) -> str:
    client = redis.Redis.from_url(url, socket_timeout=1, socket_connect_timeout=1)
    try:
        client.ping()
        return "ok"
    except redis.RedisError as exc:
        return f"error: {exc}"[:300]
    finally:
        client.close()


@bp.get("/ready")
@public
def ready():
    settings = current_app.config["CFMP_SETTINGS"]
    checks = {f"database:{bind}": _check_database(bind) for bind in current_app.config["CFMP_BINDS"]}
    checks["broker"] = _check_broker(settings.broker_url)
    if any(state != "ok" for state in checks.values()):
        raise ApiError("not_ready", "A dependency of this service is not reachable.", checks, status=503)
    return {"status": "ready", "service": current_app.config["CFMP_SERVICE"], "checks": checks}, 200

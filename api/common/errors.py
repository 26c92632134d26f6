"""One error type raised by views, one JSON shape rendered for every status >= 400."""
from __future__ import annotations

import logging
import sqlite3

import marshmallow
import sqlalchemy as sa
from flask import Flask, g, jsonify
from werkzeug.exceptions import HTTPException

from common.http import error_body

log = logging.getLogger(__name__)

# Seconds a client is asked to wait (`Retry-After`) while the service's database cannot be reached.
DATABASE_RETRY_AFTER = 5
# MySQL client errors meaning "no connection" (PyMySQL raises them as OperationalError): cannot
# connect, server has gone away, lost connection during a query, lost connection (extended).
_MYSQL_CONNECTION_ERRORS = frozenset({2003, 2006, 2013, 2055})

# Codes for the werkzeug exceptions Flask raises itself (routing, body size, methods).
HTTP_CODES = {
    400: "bad_request", 401: "unauthorized", 403: "forbidden", 404: "not_found", 405: "method_not_allowed",
    409: "conflict", 413: "payload_too_large", 415: "unsupported_media_type", 429: "too_many_requests",
}


class ApiError(Exception):
    status = 400

    def __init__(self, code: str, message: str, details: dict | None = None, status: int | None = None):
        super().__init__(message)
        self.code = code
        self.message = message
        self.details = details or {}
        if status is not None:
            self.status = status


class BadRequest(ApiError):
    status = 400


class Unauthorized(ApiError):
    status = 401


class Forbidden(ApiError):
    status = 403


class NotFound(ApiError):
    status = 404


class Conflict(ApiError):
    status = 409


class ValidationFailed(ApiError):
    status = 422


class Unavailable(ApiError):
    """503: the service cannot take this now; `retry_after` seconds become the Retry-After header."""

    status = 503

    def __init__(self, code: str, message: str, details: dict | None = None, retry_after: int = 5):
        super().__init__(code, message, details)
        self.retry_after = retry_after


def is_database_unreachable(exc: BaseException) -> bool:
    """True only when the database could not be reached; what a statement did wrong (a constraint,
    bad SQL, a missing table, a deadlock) is a bug or a conflict and stays a 500."""
    if isinstance(exc, sa.exc.DisconnectionError):
        return True
    if not isinstance(exc, (sa.exc.OperationalError, sa.exc.InterfaceError)):
        return False
    if exc.connection_invalidated:  # the dialect recognised a dropped connection
        return True
    orig = exc.orig
    if isinstance(orig, sqlite3.Error):
        return "unable to open database file" in str(orig)
    args = getattr(orig, "args", ())
    return bool(args) and isinstance(args[0], int) and args[0] in _MYSQL_CONNECTION_ERRORS


def _database_reason(exc: BaseException) -> str:
    """The driver's own words (never SQLAlchemy's, which quote the statement and its parameters)."""
    orig = getattr(exc, "orig", None) or exc
    return f"{type(orig).__name__}: {orig}"[:300]


def json_error(status: int, code: str, message: str, details: dict | None = None):
    response = jsonify(error_body(code, message, g.get("request_id", "-"), details))
    response.status_code = status
    return response


def register_error_handlers(app: Flask) -> None:
    @app.errorhandler(ApiError)
    def _api_error(exc: ApiError):
        response = json_error(exc.status, exc.code, exc.message, exc.details)
        if isinstance(exc, Unavailable):
            response.headers["Retry-After"] = str(exc.retry_after)
        return response

    @app.errorhandler(marshmallow.ValidationError)
    def _validation_error(exc: marshmallow.ValidationError):
        details = exc.messages if isinstance(exc.messages, dict) else {"_schema": exc.messages}
        return json_error(422, "validation_failed", "The request body is not valid.", details)

    @app.errorhandler(HTTPException)
    def _http_error(exc: HTTPException):
        status = exc.code or 500
        response = json_error(status, HTTP_CODES.get(status, "http_error"), exc.description or exc.name)
        # Keep what the exception says in headers, e.g. the `Allow` of a 405 (RFC 9110 §15.5.6).
        for name, value in exc.get_headers():
            if name.lower() != "content-type":
                response.headers[name] = value
        return response

    @app.errorhandler(Exception)
    def _unexpected(exc: Exception):
        if is_database_unreachable(exc):
            # An outage, not a bug: one line per request (tagged with its id), no traceback. The
            # session is rolled back and removed when the app context ends (Flask-SQLAlchemy), and
            # the pool's pre-ping replaces dead connections, so the database coming back is enough.
            log.warning("database unreachable, answering 503: %s", _database_reason(exc))
            return _api_error(Unavailable("database_unavailable",
                                          "The service's database is unreachable; retry in a few seconds.",
                                          retry_after=DATABASE_RETRY_AFTER))
        log.exception("unhandled error: %s", exc)
        return json_error(500, "internal_error", "An unexpected error occurred; it has been logged.")

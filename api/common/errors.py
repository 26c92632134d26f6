"""One error type raised by views, one JSON shape rendered for every status >= 400."""
from __future__ import annotations

import logging

import marshmallow
from flask import Flask, g, jsonify
from werkzeug.exceptions import HTTPException

from common.http import error_body

log = logging.getLogger(__name__)

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


def json_error(status: int, code: str, message: str, details: dict | None = None):
    response = jsonify(error_body(code, message, g.get("request_id", "-"), details))
    response.status_code = status
    return response


def register_error_handlers(app: Flask) -> None:
    @app.errorhandler(ApiError)
    def _api_error(exc: ApiError):
        return json_error(exc.status, exc.code, exc.message, exc.details)

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
        log.exception("unhandled error: %s", exc)
        return json_error(500, "internal_error", "An unexpected error occurred; it has been logged.")

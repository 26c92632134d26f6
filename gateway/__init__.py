"""The JWT gateway: the single entry for REST clients in development (APISIX plays this part in compose).

Per request: match the route table, verify the JWT for protected routes, replace any client-sent
identity headers with the token's, and stream the request to an instance of the owning service and
its answer back. Everything the gateway says itself uses the services' error shape.
"""
from __future__ import annotations

import logging
import re
import time
from urllib.parse import quote

from flask import Flask, Request, Response, g, jsonify, request
from werkzeug.exceptions import HTTPException

from common.http import REQUEST_ID_HEADER, error_body, request_id_from
from common.logging import request_id_var
from common.settings import Settings
from gateway.auth import InvalidToken, challenge, identify, identity_headers
from gateway.discovery import Discovery, discovery_for
from gateway.proxy import (
    GatewayError,
    Proxy,
    Upstream,
    client_response_headers,
    read_body,
    upstream_request_headers,
)
from gateway.routes import has_dot_segment, match

__all__ = ["create_app"]

logger = logging.getLogger("gateway")

METHODS = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]
_PRINTABLE_ASCII = re.compile(r"[!-~]+")
# RFC 3986 pchar plus `/`: what may stay unescaped when a path has to be re-encoded.
_PATH_SAFE = "/:@!$&'()*+,;=-._~"
_HTTP_ERROR_CODES = {
    400: "bad_request", 404: "route_not_found", 405: "method_not_allowed", 413: "payload_too_large",
}


def create_app(settings: Settings | None = None, *, discovery: Discovery | None = None) -> Flask:
    """The gateway WSGI app; `discovery` defaults to Nacos when `settings` name a NACOS_SERVER, else
    to the static upstream map.

    Logging is left alone: the process entry point (`cfmp gateway`, `gateway.wsgi`) configures it.
    """
    settings = settings or Settings()
    proxy = Proxy(settings, discovery or discovery_for(settings))
    app = Flask("gateway")
    app.extensions["gateway.proxy"] = proxy
    # Paths are the upstream's business: no slash merging or redirects, and OPTIONS is forwarded.
    app.url_map.merge_slashes = False
    app.add_url_rule("/health", "health", _health, methods=["GET"])

    def forward(path: str = "") -> Response:
        if has_dot_segment(request.path):
            raise GatewayError(400, "invalid_path", "The path must not contain '.' or '..' segments.")
        route = match(request.path)
        if route is None:
            raise GatewayError(404, "route_not_found", f"No route matches {request.path}.")
        identity = identify(settings, route, request.headers.get("Authorization"))
        body = read_body(request.stream, request.headers.get("Content-Length"), settings.gateway_max_body)
        headers = upstream_request_headers(
            request.headers.items(),
            request_id=g.request_id,
            identity=identity_headers(identity) if identity else {},
            client_addr=request.remote_addr,
            host=request.host,
            scheme=request.scheme,
        )
        upstream = proxy.forward(route.service, request.method, _request_target(request), headers, body)
        g.upstream = upstream.instance
        return _client_response(upstream)

    for rule in ("/", "/<path:path>"):
        app.add_url_rule(rule, "forward", forward, methods=METHODS, provide_automatic_options=False)
    _install_request_hooks(app)
    _install_error_handlers(app)
    return app


def _health() -> Response:
    return jsonify(status="ok", service="gateway")


def _request_target(req: Request) -> str:
    """The path and query exactly as the client sent them, so encoding survives the hop (`%2F` stays).

    Falls back to re-encoding the decoded path when the raw target is absent, absolute-form or not
    plain ASCII, which the upstream connection could not send as is.
    """
    raw = req.environ.get("RAW_URI") or req.environ.get("REQUEST_URI") or ""
    if raw.startswith("/") and _PRINTABLE_ASCII.fullmatch(raw):
        return raw
    query = quote(req.query_string, safe=_PATH_SAFE + "?%")
    return quote(req.path, safe=_PATH_SAFE) + (f"?{query}" if query else "")


def _client_response(upstream: Upstream) -> Response:
    try:
        headers = client_response_headers(upstream.headers)
        response = Response(upstream, status=upstream.status, headers=headers)
    except BaseException:
        upstream.close()  # not handed to the server yet, so nobody else would return the connection
        raise
    if not any(name.lower() == "content-type" for name, _ in headers):
        del response.headers["Content-Type"]  # werkzeug adds a default; the upstream's answer had none
    return response


def _install_request_hooks(app: Flask) -> None:
    @app.before_request
    def start() -> None:
        g.started = time.perf_counter()
        g.request_id = request_id_from(request.headers.get(REQUEST_ID_HEADER))
        g.request_id_token = request_id_var.set(g.request_id)

    @app.after_request
    def finish(response: Response) -> Response:
        response.headers[REQUEST_ID_HEADER] = g.request_id
        if request.endpoint != "health":
            elapsed_ms = (time.perf_counter() - g.started) * 1000
            logger.info(
                "%s %s -> %s %d %.1fms",
                request.method, request.path, g.get("upstream", "-"), response.status_code, elapsed_ms,
            )
        return response

    @app.teardown_request
    def reset(_exc: BaseException | None) -> None:
        token = g.pop("request_id_token", None)
        if token is not None:
            request_id_var.reset(token)


def _error(status: int, code: str, message: str, headers: dict[str, str] | None = None) -> Response:
    response = jsonify(error_body(code, message, g.get("request_id") or request_id_from(None)))
    response.status_code = status
    response.headers.update(headers or {})
    return response


def _install_error_handlers(app: Flask) -> None:
    @app.errorhandler(GatewayError)
    def gateway_error(exc: GatewayError) -> Response:
        return _error(exc.status, exc.code, exc.message)

    @app.errorhandler(InvalidToken)
    def invalid_token(exc: InvalidToken) -> Response:
        return _error(401, exc.code, exc.message, {"WWW-Authenticate": challenge(exc)})

    @app.errorhandler(HTTPException)
    def http_error(exc: HTTPException) -> Response:
        status = exc.code or 500
        code = _HTTP_ERROR_CODES.get(status) or (exc.name or "error").lower().replace(" ", "_")
        allow = {"Allow": ", ".join(exc.valid_methods)} if getattr(exc, "valid_methods", None) else None
        message = "No route matches this path." if status == 404 else (exc.description or exc.name)
        return _error(status, code, message, allow)

    @app.errorhandler(Exception)
    def unexpected(exc: Exception) -> Response:
        logger.exception("unexpected error on %s %s", request.method, request.path)
        return _error(500, "internal_error", "The gateway failed unexpectedly.")

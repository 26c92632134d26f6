"""Every route needs a valid JWT unless its view is marked `@public`; identity comes from the token.

Services verify the token themselves (defence in depth): the gateway's `X-User-*` headers are a
convenience for logs, never trusted for access decisions.
"""
from __future__ import annotations

from functools import wraps

from flask import current_app, g, request

from api.common.errors import Forbidden, Unauthorized
from common.tokens import Identity, InvalidToken, authenticate


def public(view):
    """Mark a view as reachable without a token (health, OpenAPI, signed provider callbacks)."""
    view._public = True
    return view


def authenticate_request() -> None:
    """before_request hook: set `g.identity` or answer 401."""
    view = current_app.view_functions.get(request.endpoint) if request.endpoint else None
    if view is None or getattr(view, "_public", False):
        return
    try:
        g.identity = authenticate(current_app.config["CFMP_SETTINGS"], request.headers.get("Authorization"))
    except InvalidToken as exc:
        raise Unauthorized(exc.code, exc.message) from None


def current_identity() -> Identity:
    return g.identity


def admin_only(view):
    @wraps(view)
    def wrapper(*args, **kwargs):
        if not g.identity.is_admin:
            raise Forbidden("admin_required", "This endpoint is for administrators.")
        return view(*args, **kwargs)

    return wrapper

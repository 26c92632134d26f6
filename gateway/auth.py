"""The gateway's JWT check and the identity headers it hands to services.

Verification itself lives in `common.tokens` (pinned algorithm, required `key` claim, `exp`/`nbf`), so
the gateway and the services can never disagree on what a valid token is; this module only decides
when to check and how the result travels upstream.
"""
from __future__ import annotations

from common.http import IDENTITY_HEADER_PREFIX, USER_ROLE_HEADER, USER_UUID_HEADER
from common.settings import Settings
from common.tokens import Identity, InvalidToken, authenticate
from gateway.routes import Route

__all__ = ["InvalidToken", "identify", "identity_headers", "is_identity_header", "challenge"]


def identify(settings: Settings, route: Route, authorization: str | None) -> Identity | None:
    """The caller's identity for a protected route, None for a public one; raises InvalidToken."""
    if not route.auth:
        return None
    return authenticate(settings, authorization)


def is_identity_header(name: str) -> bool:
    """Whether a header claims identity; only the gateway may set those, so clients' copies are dropped."""
    return name.lower().startswith(IDENTITY_HEADER_PREFIX.lower())


def identity_headers(identity: Identity) -> dict[str, str]:
    return {USER_UUID_HEADER: str(identity.user_uuid), USER_ROLE_HEADER: identity.role}


def challenge(error: InvalidToken) -> str:
    """The `WWW-Authenticate` value of a 401 (RFC 6750: no error code when no token was sent)."""
    if error.code == "missing_token":
        return "Bearer"
    return 'Bearer error="invalid_token"'

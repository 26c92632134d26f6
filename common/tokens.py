"""JWT helpers: issue development tokens and verify tokens with a pinned algorithm.

Claims (DESIGN.md §5): `key` (the consumer key APISIX jwt-auth selects a credential by), `sub` (the
user's UUID), `role` (`user` or `admin`), `exp`, `iat`, optional `email`. `nbf` is checked when present.
"""
from __future__ import annotations

import time
import uuid
from dataclasses import dataclass

import jwt

from common.settings import Settings

ROLES = ("user", "admin")


class InvalidToken(Exception):
    """The token cannot be trusted; `code` is the error code clients see."""

    def __init__(self, code: str, message: str):
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass(frozen=True)
class Identity:
    user_uuid: uuid.UUID
    role: str
    email: str | None = None

    @property
    def is_admin(self) -> bool:
        return self.role == "admin"


def issue_token(
    settings: Settings, user_uuid: uuid.UUID | str, role: str = "user", ttl: int = 3600, email: str | None = None
) -> str:
    if role not in ROLES:
        raise ValueError(f"role must be one of {ROLES}")
    now = int(time.time())
    claims = {"key": settings.jwt_key, "sub": str(uuid.UUID(str(user_uuid))), "role": role, "iat": now, "exp": now + ttl}
    if email:
        claims["email"] = email
    return jwt.encode(claims, settings.jwt_secret, algorithm=settings.jwt_algorithm)


def bearer_token(authorization: str | None) -> str:
    """The token of an `Authorization: Bearer <token>` header, or InvalidToken."""
    if not authorization:
        raise InvalidToken("missing_token", "An Authorization: Bearer token is required.")
    scheme, _, token = authorization.strip().partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise InvalidToken("invalid_token", "The Authorization header must be 'Bearer <token>'.")
    return token.strip()


def verify_token(settings: Settings, token: str) -> Identity:
    try:
        claims = jwt.decode(
            token,
            settings.jwt_secret,
            algorithms=[settings.jwt_algorithm],
            options={"require": ["exp", "iat", "sub", "key"]},
            leeway=5,
        )
    except jwt.ExpiredSignatureError:
        raise InvalidToken("token_expired", "The token has expired.") from None
    except jwt.ImmatureSignatureError:
        raise InvalidToken("invalid_token", "The token is not valid yet.") from None
    except jwt.MissingRequiredClaimError as exc:
        raise InvalidToken("invalid_token", f"The token lacks the '{exc.claim}' claim.") from None
    except jwt.InvalidTokenError:
        raise InvalidToken("invalid_token", "The token is malformed or its signature is wrong.") from None
    if claims.get("key") != settings.jwt_key:
        raise InvalidToken("invalid_token", "The token's consumer key is unknown.")
    if claims.get("role", "user") not in ROLES:
        raise InvalidToken("invalid_token", "The token's role is unknown.")
    try:
        user_uuid = uuid.UUID(str(claims["sub"]))
    except ValueError:
        raise InvalidToken("invalid_token", "The token's subject is not a UUID.") from None
    email = claims.get("email")
    return Identity(user_uuid=user_uuid, role=claims.get("role", "user"), email=email if isinstance(email, str) else None)


def authenticate(settings: Settings, authorization: str | None) -> Identity:
    return verify_token(settings, bearer_token(authorization))

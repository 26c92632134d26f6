"""JWT helpers: issue development tokens and verify tokens with a pinned algorithm.

Claims (DESIGN.md §5): `key` (the consumer key APISIX jwt-auth selects a credential by), `sub` (the
user's UUID), `role` (`user` or `admin`), `exp`, `iat`, optional `email`. `nbf` is checked when present.
"""
from __future__ import annotations

import threading
import time
import uuid
from collections import OrderedDict
from dataclasses import dataclass

import jwt

from common.settings import Settings

ROLES = ("user", "admin")
LEEWAY = 5  # seconds of clock skew tolerated on exp, nbf and iat


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
    """The identity a valid token carries, or InvalidToken. A token verified before is answered from
    `_VERIFIED` (its time claims are checked again on every use); others are fully verified."""
    cache_key = (settings.jwt_secret, settings.jwt_algorithm, settings.jwt_key, token)
    known = _VERIFIED.get(cache_key)
    if known is not None:
        identity, not_before, expires = known
        now = time.time()
        if not_before - LEEWAY <= now < expires + LEEWAY:
            return identity
    claims = _decode(settings, token)
    if claims.get("key") != settings.jwt_key:
        raise InvalidToken("invalid_token", "The token's consumer key is unknown.")
    if claims.get("role", "user") not in ROLES:
        raise InvalidToken("invalid_token", "The token's role is unknown.")
    try:
        user_uuid = uuid.UUID(str(claims["sub"]))
    except ValueError:
        raise InvalidToken("invalid_token", "The token's subject is not a UUID.") from None
    email = claims.get("email")
    identity = Identity(user_uuid=user_uuid, role=claims.get("role", "user"),
                        email=email if isinstance(email, str) else None)
    _VERIFIED.put(cache_key, (identity, float(claims.get("nbf", 0)), float(claims["exp"])))
    return identity


def _decode(settings: Settings, token: str) -> dict:
    try:
        return jwt.decode(
            token,
            settings.jwt_secret,
            algorithms=[settings.jwt_algorithm],
            options={"require": ["exp", "iat", "sub", "key"]},
            leeway=LEEWAY,
        )
    except jwt.ExpiredSignatureError:
        raise InvalidToken("token_expired", "The token has expired.") from None
    except jwt.ImmatureSignatureError:
        raise InvalidToken("invalid_token", "The token is not valid yet.") from None
    except jwt.MissingRequiredClaimError as exc:
        raise InvalidToken("invalid_token", f"The token lacks the '{exc.claim}' claim.") from None
    except jwt.InvalidTokenError:
        raise InvalidToken("invalid_token", "The token is malformed or its signature is wrong.") from None


class _VerifiedTokens:
    """The identities of tokens whose signature and claims checked out, least recently used first
    out. A client sends the same token with every request, and the gateway and the service each
    verify it: this skips the HMAC and the claim parsing on repeats. Only successes are kept, keyed
    by the token *and* the secret, algorithm and key it was verified with, so a rotated secret or
    key never accepts a token the new settings would refuse; expiry and `nbf` are re-checked on
    every hit."""

    def __init__(self, size: int):
        self.size = size
        self._entries: OrderedDict[tuple, tuple[Identity, float, float]] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: tuple) -> tuple[Identity, float, float] | None:
        with self._lock:
            entry = self._entries.get(key)
            if entry is not None:
                self._entries.move_to_end(key)
            return entry

    def put(self, key: tuple, entry: tuple[Identity, float, float]) -> None:
        with self._lock:
            self._entries[key] = entry
            self._entries.move_to_end(key)
            while len(self._entries) > self.size:
                self._entries.popitem(last=False)

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()


_VERIFIED = _VerifiedTokens(size=4096)


def authenticate(settings: Settings, authorization: str | None) -> Identity:
    return verify_token(settings, bearer_token(authorization))

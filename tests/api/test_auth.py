"""401 for every token the gateway and the services must not trust."""
from __future__ import annotations

import base64
import json
import time
import uuid

import jwt
import pytest

from common.tokens import issue_token


def _b64(data: dict) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()


def _claims(settings, **overrides) -> dict:
    now = int(time.time())
    claims = {"key": settings.jwt_key, "sub": str(uuid.uuid4()), "role": "user", "iat": now, "exp": now + 60}
    claims.update(overrides)
    return {k: v for k, v in claims.items() if v is not None}


def bad_tokens(settings) -> dict[str, tuple[str, str]]:
    now = int(time.time())
    sign = lambda claims, secret=settings.jwt_secret, alg="HS256": jwt.encode(claims, secret, algorithm=alg)  # noqa: E731
    return {
        "expired": (sign(_claims(settings, iat=now - 120, exp=now - 60)), "token_expired"),
        "forged": (sign(_claims(settings), secret="another-secret-0123456789abcdefghijklmn"), "invalid_token"),
        "alg none": (f"{_b64({'alg': 'none', 'typ': 'JWT'})}.{_b64(_claims(settings))}.", "invalid_token"),
        "no key claim": (sign(_claims(settings, key=None)), "invalid_token"),
        "wrong key claim": (sign(_claims(settings, key="someone-else")), "invalid_token"),
        "not yet valid": (sign(_claims(settings, nbf=now + 600)), "invalid_token"),
        "HS512 instead of pinned HS256": (sign(_claims(settings), alg="HS512"), "invalid_token"),
        "subject not a uuid": (sign(_claims(settings, sub="bob")), "invalid_token"),
        "garbage": ("not.a.token", "invalid_token"),
    }


@pytest.mark.parametrize("via", ["gateway", "service"])
def test_untrusted_tokens_are_401(stack, via):
    api = stack.api() if via == "gateway" else stack.direct()
    missing = api.get("/api/orders/")
    assert missing.status == 401 and missing.json["error"] == "missing_token"
    for name, (token, code) in bad_tokens(stack.settings).items():
        reply = api.get("/api/orders/", headers={"Authorization": f"Bearer {token}"})
        assert reply.status == 401, name
        assert reply.json["error"] == code, name
    basic = api.get("/api/orders/", headers={"Authorization": "Basic dXNlcjpwYXNz"})
    assert basic.status == 401


def test_a_good_token_passes_both(stack):
    token = issue_token(stack.settings, uuid.uuid4())
    assert stack.api(token).get("/api/orders/").status == 200
    assert stack.direct(token).get("/api/orders/").status == 200


def test_public_routes_need_no_token(stack):
    for path in ("/health", "/ready", "/openapi.json"):
        assert stack.direct().get(path).status == 200, path

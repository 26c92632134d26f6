"""The JWT check in front of protected routes: every rejected token is a 401 and never reaches a service."""
from __future__ import annotations

import base64
import json
import time
import uuid

import jwt
import pytest

from common.tokens import issue_token
from tests.gateway.servers import GATEWAY_SECRET, EchoServer, ServedGateway, assert_error

FORGED_SECRET = "not-the-gateway-secret-0123456789abcdef"


def _claims(**changes: object) -> dict[str, object]:
    now = int(time.time())
    claims = {"key": "cfmp", "sub": str(uuid.uuid4()), "role": "user", "iat": now, "exp": now + 600}
    claims.update(changes)
    return {name: value for name, value in claims.items() if value is not None}


def _signed(secret: str = GATEWAY_SECRET, algorithm: str = "HS256", **changes: object) -> str:
    return jwt.encode(_claims(**changes), secret, algorithm=algorithm)


def _b64(data: dict[str, object]) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()


def _unsigned() -> str:
    """An `alg: none` token, built by hand because no careful library will produce one."""
    return f"{_b64({'alg': 'none', 'typ': 'JWT'})}.{_b64(_claims())}."


REJECTED = {
    "missing": (None, "missing_token"),
    "empty bearer": ("Bearer ", "invalid_token"),
    "basic scheme": ("Basic dXNlcjpwYXNzd29yZA==", "invalid_token"),
    "bare token": (_signed(), "invalid_token"),
    "malformed": ("Bearer not.a.jwt", "invalid_token"),
    "forged": (f"Bearer {_signed(FORGED_SECRET)}", "invalid_token"),
    "alg none": (f"Bearer {_unsigned()}", "invalid_token"),
    "other algorithm": (f"Bearer {_signed(GATEWAY_SECRET * 2, 'HS512')}", "invalid_token"),
    "no key claim": (f"Bearer {_signed(key=None)}", "invalid_token"),
    "wrong key": (f"Bearer {_signed(key='someone-else')}", "invalid_token"),
    "not yet valid": (f"Bearer {_signed(nbf=int(time.time()) + 3600)}", "invalid_token"),
    "subject not a uuid": (f"Bearer {_signed(sub='alice')}", "invalid_token"),
    "expired": (f"Bearer {_signed(iat=int(time.time()) - 900, exp=int(time.time()) - 600)}", "token_expired"),
}


@pytest.mark.parametrize(("authorization", "code"), REJECTED.values(), ids=REJECTED.keys())
def test_rejected_tokens_get_401_and_never_reach_the_service(
    gateway: ServedGateway, echo: EchoServer, authorization: str | None, code: str
) -> None:
    headers = {"Authorization": authorization} if authorization is not None else {}
    reply = gateway.request("POST", "/api/orders/", b'{"a": 1}', headers)
    assert_error(reply, 401, code)
    assert reply.headers["WWW-Authenticate"].startswith("Bearer")
    assert echo.seen == [] and echo.connections == 0


def test_expired_token_from_issue_token_is_token_expired(gateway: ServedGateway) -> None:
    token = issue_token(gateway.settings, uuid.uuid4(), ttl=-60)
    assert_error(gateway.request("GET", "/api/payments/", headers={"Authorization": f"Bearer {token}"}), 401,
                 "token_expired")


@pytest.mark.parametrize("prefix", ["/api/orders/", "/api/payments/", "/api/risk/", "/api/notifications/"])
def test_every_service_prefix_is_protected(gateway: ServedGateway, prefix: str) -> None:
    assert_error(gateway.request("GET", prefix), 401, "missing_token")


def test_valid_token_passes(gateway: ServedGateway, echo: EchoServer) -> None:
    token = _signed(email="buyer@example.com")
    assert gateway.request("GET", "/api/orders/", headers={"Authorization": f"bearer {token}"}).status == 200
    assert len(echo.seen) == 1


def test_callback_route_is_public(gateway: ServedGateway, echo: EchoServer) -> None:
    headers = {"Content-Type": "text/xml"}
    reply = gateway.request("POST", "/api/payments/callback/wechat_pay/", b"<xml/>", headers)
    assert reply.status == 200
    assert echo.seen[-1].path == "/api/payments/callback/wechat_pay/"

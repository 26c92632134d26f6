"""Header injection at the gateway: whatever a client smuggles into raw header lines (bare CR or
LF, folded continuation lines, NUL, look-alike names), the upstream gets no header the client made
up under the identity prefix, no CR or LF inside a value, and exactly the token's identity.

tests/gateway/test_identity.py checks that well-formed forged `X-User-*` headers are dropped, and
tests/api/test_visibility.py that services ignore them; these requests are the malformed kind.
"""
from __future__ import annotations

import uuid

import pytest

from common.tokens import issue_token
from tests.gateway.servers import EchoServer, ServedGateway

SMUGGLED = {
    "folded continuation line": b"X-Custom: a\r\n X-User-Role: admin\r\n",
    "bare CR": b"X-Custom: a\rX-User-Role: admin\r\n",
    "bare LF": b"X-Custom: a\nX-User-Role: admin\r\n",
    "tab-folded line": b"X-Custom: a\r\n\tX-User-UUID: 00000000-0000-4000-8000-000000000000\r\n",
    "space before the colon": b"X-User-Role : admin\r\n",
    "underscores for dashes": b"X_User_Role: admin\r\nX_User_UUID: 00000000-0000-4000-8000-000000000000\r\n",
    "NUL in a value": b"X-Custom: a\x00X-User-Role: admin\r\n",
    "request id with a CR": b"X-Request-ID: abc\rX-User-Role: admin\r\n",
}


@pytest.mark.parametrize("smuggled", SMUGGLED.values(), ids=SMUGGLED.keys())
def test_smuggled_header_lines_never_reach_the_upstream_as_identity(
        gateway: ServedGateway, echo: EchoServer, smuggled: bytes) -> None:
    user = uuid.uuid4()
    token = issue_token(gateway.settings, user)
    head = f"GET /api/orders/ HTTP/1.1\r\nHost: gw\r\nAuthorization: Bearer {token}\r\n".encode()
    head += smuggled + b"\r\n"
    reply = gateway.raw(head)
    assert reply.status in (200, 400), reply.body  # refused, or forwarded harmlessly; never a 5xx
    if reply.status == 400:
        assert echo.seen == []
        return
    [seen] = echo.seen
    identity = sorted((name.lower(), value) for name, value in seen.headers
                      if name.lower().startswith("x-user"))
    assert identity == [("x-user-role", "user"), ("x-user-uuid", str(user))]
    assert not [value for _, value in seen.headers if "\r" in value or "\n" in value]
    assert "\r" not in reply.headers["X-Request-ID"] and "\n" not in reply.headers["X-Request-ID"]

"""Identity and request ids: what the gateway adds, replaces and removes on the way to the upstream."""
from __future__ import annotations

import logging
import re
import uuid
from collections.abc import Iterator

import pytest

from common.logging import request_id_var
from common.tokens import issue_token
from tests.gateway.servers import EchoServer, ServedGateway

MINTED = re.compile(r"^[0-9a-f]{32}$")


def test_identity_headers_come_from_the_token_and_forgeries_are_dropped(
    gateway: ServedGateway, echo: EchoServer
) -> None:
    user = uuid.uuid4()
    authorization = f"Bearer {issue_token(gateway.settings, user, role='admin')}"
    forged = {"X-User-UUID": str(uuid.uuid4()), "x-user-role": "admin", "X-User-Anything": "1"}
    headers = {"Authorization": authorization, **forged}
    reply = gateway.request("GET", "/api/risk/assessments/", headers=headers)
    assert reply.status == 200
    seen = echo.seen[-1]
    identity = [(name.lower(), value) for name, value in seen.headers if name.lower().startswith("x-user-")]
    assert sorted(identity) == [("x-user-role", "admin"), ("x-user-uuid", str(user))]
    assert seen.header_all("Authorization") == [authorization]


def test_public_route_gets_no_identity_and_keeps_authorization(
    gateway: ServedGateway, echo: EchoServer
) -> None:
    headers = {"X-User-UUID": str(uuid.uuid4()), "X-User-Role": "admin", "Authorization": "Signature abc"}
    reply = gateway.request("POST", "/api/payments/callback/alipay/", b"trade_no=1", headers)
    assert reply.status == 200
    seen = echo.seen[-1]
    assert [name for name, _ in seen.headers if name.lower().startswith("x-user-")] == []
    assert seen.header("Authorization") == "Signature abc"
    assert seen.body == b"trade_no=1"


@pytest.mark.parametrize(
    ("sent", "kept"),
    [("req-42.abc:1", True), (None, False), ("has spaces", False), ("x" * 129, False), ("bad/slash", False)],
)
def test_request_id_is_kept_when_well_formed_and_minted_otherwise(
    gateway: ServedGateway, echo: EchoServer, sent: str | None, kept: bool
) -> None:
    headers = {"Authorization": f"Bearer {issue_token(gateway.settings, uuid.uuid4())}"}
    if sent is not None:
        headers["X-Request-ID"] = sent
    reply = gateway.request("GET", "/api/orders/", headers=headers)
    returned = reply.headers["X-Request-ID"]
    assert returned == sent if kept else MINTED.match(returned)
    assert echo.seen[-1].header_all("X-Request-ID") == [returned]


def test_gateway_errors_return_the_request_id_too(gateway: ServedGateway) -> None:
    reply = gateway.request("GET", "/api/orders/", headers={"X-Request-ID": "trace-7"})
    assert reply.status == 401
    assert reply.headers["X-Request-ID"] == reply.json()["request_id"] == "trace-7"


class _Recorder(logging.Handler):
    """Keeps each gateway log line with the request id in effect when it was logged."""

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.lines: list[tuple[str, str]] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append((record.getMessage(), request_id_var.get()))


@pytest.fixture
def gateway_log() -> Iterator[_Recorder]:
    logger = logging.getLogger("gateway")
    recorder, level = _Recorder(), logger.level
    logger.addHandler(recorder)
    logger.setLevel(logging.INFO)
    yield recorder
    logger.removeHandler(recorder)
    logger.setLevel(level)


def test_one_log_line_per_request_carries_the_request_id(
    gateway: ServedGateway, echo: EchoServer, gateway_log: _Recorder
) -> None:
    token = issue_token(gateway.settings, uuid.uuid4())
    headers = {"Authorization": f"Bearer {token}", "X-Request-ID": "r-1"}
    gateway.request("POST", "/api/orders/?secret=1", b"{}", headers)
    gateway.request("GET", "/api/nowhere/", headers={"X-Request-ID": "r-2"})
    gateway.request("GET", "/health", headers={"X-Request-ID": "r-3"})
    assert gateway_log.lines == [
        (f"POST /api/orders/ -> {echo.url} 200 {_ms(gateway_log.lines[0][0])}", "r-1"),
        (f"GET /api/nowhere/ -> - 404 {_ms(gateway_log.lines[1][0])}", "r-2"),
    ]
    assert request_id_var.get() == "-"  # nothing leaks into the test's own context


def _ms(line: str) -> str:
    duration = line.rsplit(" ", 1)[-1]
    assert re.fullmatch(r"\d+\.\dms", duration), line
    return duration
